"""The one front door: `invoke --list` shows every task, `invoke --help TASK` its flags."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from invoke import Collection, Context, Exit, task
from rich.table import Table

from devstack import loadtest as loadtest_mod
from devstack.bench import (
    LiveUpdateEmulator,
    dependency_change,
    image_bench,
    service_bench,
    write_benchmarks_md,
)
from devstack.cluster import (
    CONTEXT,
    REGISTRY_HOST_PORT,
    CommandError,
    Shell,
    Tools,
    port_forward,
    tilt_down,
    tilt_up,
)
from devstack.cluster import cluster_down as cluster_down_steps
from devstack.cluster import cluster_up as cluster_up_steps
from devstack.compose import Stack, prepare_images
from devstack.console import console
from devstack.deploy import DeployError, expected_context
from devstack.deploy import deploy as deploy_overlay
from devstack.deploy import rollback as rollback_rollout
from devstack.docker import Docker, DockerError
from devstack.images import SIZE_BUDGET_BYTES, build_image, git_state, image_tags
from devstack.loadtest import Objectives
from devstack.net import free_port
from devstack.pipeline import Stage, run_stages, succeeded
from devstack.registry import DEFAULT_REGISTRY, PushRefusedError
from devstack.registry import push as push_image
from devstack.scan import ScanError, ScanResult, run_gate
from devstack.secrets import SecretError
from devstack.smoke import smoke_test
from devstack.tools import TOOLS, MissingToolError, inspect, python_packages, require

ROOT = Path(__file__).resolve().parent
PY = shlex.quote(sys.executable)


@task(
    help={
        "host": "interface to bind (default 127.0.0.1: this machine only)",
        "port": "port to serve on (default 8080)",
        "reload": "restart on code changes under agent/ (default on)",
    }
)
def dev(c: Context, host: str = "127.0.0.1", port: int = 8080, reload: bool = True) -> None:
    """Run the agent locally: embedded Chroma, in-process cache, offline LLM unless a key is set."""
    env = {"HOST": host, "PORT": str(port)}
    provider = "gemini" if os.environ.get("GEMINI_API_KEY") else "offline"
    store = os.environ.get("CHROMA_HOST") or os.environ.get("CHROMA_PATH", ".vaia/chroma")
    console.print(
        f"[bold]vaia-agent[/] on [cyan]http://{host}:{port}[/]  (docs /docs, metrics /metrics)\n"
        f"  provider: {os.environ.get('LLM_PROVIDER', 'auto')} -> {provider}   store: {store}   "
        f"cache: {os.environ.get('REDIS_URL') or 'in-process'}"
    )
    flags = " --reload" if reload else ""
    with c.cd(str(ROOT)):
        c.run(f"{PY} -m agent serve{flags}", env=env, pty=sys.stdout.isatty())


@task(
    help={
        "marker": "pytest -m expression, e.g. unit or 'not container'",
        "keyword": "pytest -k expression",
    }
)
def test(c: Context, marker: str = "", keyword: str = "") -> None:  # noqa: PT028 - invoke task
    """Run the test suite. Extra pytest arguments go after `--`: invoke test -- -x -q"""
    args = []
    if marker:
        args += ["-m", marker]
    if keyword:
        args += ["-k", keyword]
    extra = c.remainder if hasattr(c, "remainder") else ""
    command = f"{PY} -m pytest {shlex.join(args)} {extra}".strip()
    with c.cd(str(ROOT)):
        c.run(command, pty=sys.stdout.isatty())


@task
def lint(c: Context) -> None:
    """ruff (lint and format check) and mypy (strict, on agent/)."""
    with c.cd(str(ROOT)):
        c.run(f"{PY} -m ruff check .")
        c.run(f"{PY} -m ruff format --check .")
        c.run(f"{PY} -m mypy")


@task
def lock(c: Context) -> None:
    """Regenerate requirements/runtime.lock (what the image installs) from pyproject.toml."""
    with c.cd(str(ROOT)):
        c.run(
            f"{PY} -m uv pip compile pyproject.toml --extra client --generate-hashes "
            "--python-version 3.11 --no-header --annotation-style line "
            "--output-file requirements/runtime.lock"
        )


@task(help={"strict": "exit non-zero when a tool is missing"})
def doctor(c: Context, strict: bool = False) -> None:
    """List every tool the project can use: version, found or missing, and how to install it."""
    table = Table(title="external tools", title_justify="left")
    for column in ("tool", "status", "version", "used for"):
        table.add_column(column)
    problems = []
    for name in TOOLS:
        status = inspect(name)
        if status.ok:
            table.add_row(name, "[green]found[/]", status.version or "", status.tool.purpose)
        else:
            problems.append(status)
            state = "[yellow]too old[/]" if status.path else "[red]missing[/]"
            table.add_row(name, state, status.version or "", status.tool.purpose)
    console.print(table)
    if problems:
        console.print("[bold]to install:[/]")
        for status in problems:
            console.print(f"  {status.tool.name}: {status.tool.install}", soft_wrap=True)
    packages = Table(title="python packages", title_justify="left")
    packages.add_column("package")
    packages.add_column("version")
    for name, version in python_packages():
        packages.add_row(name, version or "[dim]not installed[/]")
    console.print(packages)
    console.print(f"{len(TOOLS) - len(problems)} of {len(TOOLS)} tools found.")
    if strict and problems:
        raise Exit(f"{len(problems)} tool(s) missing or too old", code=1)


@task(
    help={
        "url": "post the runbooks to a running agent (e.g. http://127.0.0.1:8080) instead of "
        "writing to the configured store directly",
        "api_key": "bearer key for --url when AGENT_API_KEYS is set (default: $VAIA_API_KEY)",
    }
)
def seed(c: Context, url: str = "", api_key: str = "") -> None:
    """(Re)load the shipped runbooks. Idempotent: documents are replaced, never duplicated."""
    if not url:
        with c.cd(str(ROOT)):
            c.run(f"{PY} -m agent seed")
        return
    from agent.knowledge.corpus import shipped_documents

    documents = [
        {"id": d.id, "title": d.title, "text": d.text, "source": d.source, "metadata": d.metadata}
        for d in shipped_documents()
    ]
    key = api_key or os.environ.get("VAIA_API_KEY", "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.post(
            url.rstrip("/") + "/v1/knowledge/documents",
            json={"documents": documents},
            headers=headers,
            timeout=120,
        )
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise Exit(f"seeding {url} failed: {exc}", code=1) from exc
    body = response.json()
    for doc in body["documents"]:
        console.print(f"  {doc['id']}: {doc['chunks']} chunks")
    console.print(f"[green]seeded {len(body['documents'])} documents[/] into {body['collection']}")


def _docker() -> Docker:
    try:
        docker = Docker()
        docker.daemon_ready()
    except MissingToolError as exc:
        raise Exit(str(exc), code=127) from exc
    return docker


@task(
    help={
        "offline": "build stand-in base images from Debian packages (no registry needed)",
        "target": "Dockerfile stage: runtime (default) or dev (what Tilt builds)",
    }
)
def build(c: Context, offline: bool = False, target: str = "runtime") -> None:
    """Build the image, tagged sha-<git sha> (and <semver> on a release tag); print its size."""
    docker = _docker()
    try:
        result = build_image(
            docker, ROOT, offline=offline, target=target, echo=None, log=console.print
        )
    except (DockerError, MissingToolError) as exc:
        raise Exit(str(exc), code=1) from exc
    table = Table(title=f"{result.tags[0]}", title_justify="left")
    table.add_column("layer size", justify="right")
    table.add_column("created by")
    for size, created_by in docker.layer_sizes(result.tags[0]):
        if size:
            table.add_row(f"{size / 1e6:.1f} MB", created_by[:90])
    console.print(table)
    console.print(f"tags: {', '.join(result.tags)}")
    console.print(f"image id: {result.image_id}")
    budget = "[green]within[/]" if result.size_bytes <= SIZE_BUDGET_BYTES else "[red]OVER[/]"
    size, limit = result.size_bytes / 1e6, SIZE_BUDGET_BYTES / 1e6
    console.print(f"size: [bold]{size:.1f} MB[/] ({budget} the {limit:.0f} MB budget)")


@task(
    help={
        "offline": "use stand-in images built from Debian packages and PyPI",
        "project": "compose project name (default vaia)",
        "wait": "seconds to wait for every service to be healthy",
    }
)
def compose_up(c: Context, offline: bool = False, project: str = "vaia", wait: int = 180) -> None:
    """Build the agent image, start agent + Redis + ChromaDB, wait until healthy, print the URLs."""
    docker = _docker()
    try:
        images = prepare_images(docker, ROOT, offline=offline, log=console.print)
        stack = Stack(ROOT, project=project, env=images, docker=docker)
        stack.up(wait_seconds=wait)
    except (DockerError, MissingToolError) as exc:
        raise Exit(str(exc), code=1) from exc
    for name, url in stack.urls().items():
        console.print(f"  {name:9} {url}")
    console.print("[green]all services healthy[/]")


@task(
    help={
        "volumes": "also delete the Redis and Chroma data volumes",
        "project": "compose project name",
    }
)
def compose_down(c: Context, volumes: bool = False, project: str = "vaia") -> None:
    """Stop and remove the Compose stack (and its data with --volumes)."""
    try:
        Stack(ROOT, project=project, docker=_docker()).down(volumes=volumes)
    except (DockerError, MissingToolError) as exc:
        raise Exit(str(exc), code=1) from exc
    console.print(f"stack {project} removed" + (" with its volumes" if volumes else ""))


@task(
    help={
        "image": "the image: size, layers, cold build, rebuild after a code-only change",
        "live_update": "Tilt's live update, emulated: edit-to-serve time of the dev image",
        "service": "infer throughput and latency (cache hit, miss) against a bare endpoint; "
        "writes docs/benchmarks.md",
        "offline": "build on the stand-in bases (no registry needed)",
        "seconds": "seconds of load per service measurement (default 10)",
    }
)
def bench(
    c: Context,
    image: bool = False,
    live_update: bool = False,
    service: bool = False,
    offline: bool = False,
    seconds: int = 10,
) -> None:
    """Run benchmarks (all sections when none is named) and print their tables."""
    run_all = not (image or live_update or service)
    try:
        if service or run_all:
            _bench_service(seconds)
        if image or live_update or run_all:
            docker = _docker()
            if image or run_all:
                _bench_image(docker, offline)
            if live_update or run_all:
                _bench_live_update(docker, offline)
    except (DockerError, MissingToolError, RuntimeError) as exc:
        raise Exit(str(exc), code=1) from exc


def _bench_service(seconds: int) -> None:
    results, startup = service_bench(ROOT, seconds=seconds)
    baseline = results[0]
    title = "service benchmark (wrk, 8 connections, one process each)"
    table = Table(title=title, title_justify="left")
    for column in ("endpoint", "req/s", "vs bare", "p50 ms", "p95 ms", "p99 ms", "errors"):
        table.add_column(column, justify="right" if column != "endpoint" else "left")
    for r in results:
        ratio = baseline.rps / r.rps if r.rps else float("inf")
        cells = [
            f"{r.rps:.0f}",
            f"{ratio:.2f}x",
            f"{r.p50_ms:.1f}",
            f"{r.p95_ms:.1f}",
            f"{r.p99_ms:.1f}",
        ]
        table.add_row(r.name, *cells, str(r.errors))
    console.print(table)
    console.print(f"invoke dev: ready with the knowledge base seeded after {startup:.2f} s")
    path = write_benchmarks_md(ROOT / "docs" / "benchmarks.md", results, startup, seconds)
    console.print(f"written: {path}")


def _bench_image(docker: Docker, offline: bool) -> None:
    result = image_bench(docker, ROOT, offline=offline, log=console.print)
    table = Table(title=f"image benchmark: {result.tag}", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("image size (docker image inspect)", f"{result.size_bytes / 1e6:.1f} MB")
    table.add_row("cold build, no cache", f"{result.cold_build_seconds:.1f} s")
    table.add_row("rebuild after a code-only change", f"{result.rebuild_seconds:.1f} s")
    table.add_row("steps reused from cache in that rebuild", str(result.rebuild_cached_steps))
    console.print(table)
    layers = Table(title="layers", title_justify="left")
    layers.add_column("size", justify="right")
    layers.add_column("created by")
    for size, created_by in result.layers:
        layers.add_row(f"{size / 1e6:.1f} MB", created_by[:90] or "(base image)")
    console.print(layers)


def _bench_live_update(docker: Docker, offline: bool, edits: int = 5) -> None:
    image = build_image(docker, ROOT, offline=offline, target="dev", log=console.print).tags[0]
    with LiveUpdateEmulator(docker, image, free_port()) as pod:
        times = sorted(pod.edit_and_wait(ROOT).edit_to_serve_seconds for _ in range(edits))
    change = dependency_change(docker, ROOT, offline, free_port(), log=console.print)
    table = Table(title="the inner loop (Tilt, emulated on the dev image)", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    table.add_row(
        "code edit -> served (live update), median", f"{times[len(times) // 2]:.2f} s", "<= 1 s"
    )
    table.add_row(f"code edit -> served, worst of {edits}", f"{times[-1]:.2f} s", "")
    table.add_row("dependency change -> new image serving", f"{change.total_seconds:.1f} s", "")
    table.add_row("  of which: dev image rebuild", f"{change.rebuild_seconds:.1f} s", "")
    table.add_row("  of which: new pod until it serves", f"{change.serve_seconds:.1f} s", "")
    console.print(table)


def _tools() -> Tools:
    return Tools(Shell(echo=lambda line: console.print(f"[dim]{line}[/]", soft_wrap=True)))


def _cluster_step(step: Callable[[], None]) -> None:
    try:
        step()
    except (MissingToolError, CommandError) as exc:
        raise Exit(str(exc), code=127 if isinstance(exc, MissingToolError) else 1) from exc


@task
def cluster_up(c: Context) -> None:
    """Create (or complete) the kind cluster `vaia` with the local registry and metrics-server."""
    _cluster_step(lambda: cluster_up_steps(_tools(), ROOT, console.print))
    console.print(
        f"[green]cluster ready[/]: context {CONTEXT}, registry localhost:{REGISTRY_HOST_PORT}"
    )


@task
def cluster_down(c: Context) -> None:
    """Delete the kind cluster and the registry container."""
    _cluster_step(lambda: cluster_down_steps(_tools(), console.print))


@task
def up(c: Context) -> None:
    """cluster.up, then `tilt up` (the Tilt UI on http://localhost:10350)."""
    tools = _tools()
    _cluster_step(lambda: tools.preflight("docker", "kind", "kubectl", "tilt"))
    _cluster_step(lambda: cluster_up_steps(tools, ROOT, console.print))
    _cluster_step(lambda: tilt_up(tools, ROOT))


@task
def down(c: Context) -> None:
    """`tilt down` (if Tilt is installed), then cluster.down."""
    tools = _tools()
    if inspect("tilt").ok:
        tilt_down(tools, ROOT)
    _cluster_step(lambda: cluster_down_steps(tools, console.print))


@task(
    help={
        "users": "concurrent locust users (default 40)",
        "spawn_rate": "users started per second (default 10)",
        "duration": "seconds of load (default 90)",
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
    duration: int = 90,
    host: str = "",
    no_hpa: bool = False,
    max_error_rate: float = 0.01,
    p95_ms: float = 500,
    scale_within: float = 0,
    report_dir: str = "",
) -> None:
    """Headless locust against the agent, the HPA watched; a verdict with evidence, and a report."""
    objectives = Objectives(max_error_rate, p95_ms, scale_within or duration)
    folder = (
        Path(report_dir)
        if report_dir
        else ROOT / "reports" / time.strftime("loadtest-%Y%m%d-%H%M%S")
    )
    tools = _tools()
    try:
        require("locust")
        api = None if no_hpa else loadtest_mod.autoscaling_api(context=CONTEXT)
        with contextlib.ExitStack() as stack:
            target = host or stack.enter_context(port_forward(tools, "vaia-agent", free_port()))
            console.print(f"load: {users} users (+{spawn_rate}/s) for {duration} s on {target}")
            criteria, summary = loadtest_mod.run(
                target, users, spawn_rate, duration, folder, objectives, api, log=console.print
            )
    except (MissingToolError, CommandError, loadtest_mod.HpaWatchError, RuntimeError) as exc:
        raise Exit(str(exc), code=1) from exc
    table = Table(title="load test verdict", title_justify="left")
    for column in ("criterion", "result", "measured", "objective"):
        table.add_column(column)
    colors = {"PASS": "green", "FAIL": "red", "SKIPPED": "yellow"}
    for criterion in criteria:
        result = f"[{colors[criterion.status]}]{criterion.status}[/]"
        table.add_row(criterion.name, result, criterion.measured, criterion.objective)
    console.print(table)
    final = loadtest_mod.overall(criteria)
    console.print(f"verdict: [bold]{final}[/]   report: {summary}")
    if final != "PASS":
        raise Exit("load test failed", code=1)


def _image_ref(docker: Docker, image: str) -> str:
    """The image to act on: the given one, or this commit's `vaia-agent:sha-...` tag."""
    if image:
        return image
    tag = image_tags(git_state(ROOT))[0]
    if not docker.image_exists(tag):
        raise Exit(f"{tag} does not exist: run `invoke build` first (or pass --image)", code=1)
    return tag


def _scan(
    docker: Docker,
    image: str,
    vuln_report: str,
    db_repository: str,
    cache_dir: str,
    skip_db_update: bool,
) -> ScanResult:
    image_id = str(docker.inspect(image)["Id"])
    report_dir = ROOT / "reports" / "scan" / image_id.replace(":", "-")[:19]
    result = run_gate(
        ROOT,
        image,
        image_id,
        report_dir,
        vuln_report=Path(vuln_report) if vuln_report else None,
        db_repository=db_repository or None,
        cache_dir=Path(cache_dir) if cache_dir else None,
        skip_db_update=skip_db_update,
        log=console.print,
    )
    for finding in result.blocking:
        where = f"{finding.kind} {finding.id} in {finding.target}"
        console.print(f"  [red]{finding.severity}[/] {where}: {finding.title}")
    console.print(f"reports: {report_dir} (JSON and SARIF)")
    if not result.passed:
        raise ScanError(f"{len(result.blocking)} blocking finding(s) in {image}")
    console.print(f"[green]scan passed[/] for {image} ({image_id[:19]}); recorded")
    return result


SCAN_HELP = {
    "image": "image to scan (default: this commit's vaia-agent:sha-... tag)",
    "vuln_report": "a Trivy JSON report of vulnerabilities, made where the DB is reachable",
    "db_repository": "a mirror of the Trivy vulnerability DB (OCI repository)",
    "cache_dir": "a Trivy cache directory that already holds the DB",
    "skip_db_update": "use the DB in --cache-dir as it is",
}


@task(help=SCAN_HELP)
def scan(
    c: Context,
    image: str = "",
    vuln_report: str = "",
    db_repository: str = "",
    cache_dir: str = "",
    skip_db_update: bool = False,
) -> None:
    """The Trivy gate: vulnerabilities, misconfigurations and secrets; fails closed."""
    docker = _docker()
    try:
        _scan(
            docker, _image_ref(docker, image), vuln_report, db_repository, cache_dir, skip_db_update
        )
    except (ScanError, MissingToolError, DockerError) as exc:
        raise Exit(f"scan gate: {exc}", code=1) from exc


@task(
    help={
        "image": "image to push (default: this commit's sha tag)",
        "registry": "default localhost:5001",
    }
)
def push(c: Context, image: str = "", registry: str = "") -> None:
    """Push a scanned image (refused without a passed scan); prints the reference by digest."""
    docker = _docker()
    try:
        ref = push_image(
            docker,
            ROOT,
            _image_ref(docker, image),
            registry or os.environ.get("REGISTRY", DEFAULT_REGISTRY),
        )
    except (PushRefusedError, DockerError) as exc:
        raise Exit(str(exc), code=1) from exc
    console.print(f"pushed: {ref}", soft_wrap=True)  # one line: the CD workflow reads it


DEPLOY_HELP = {
    "image": "the immutable reference to deploy (a sha tag, a version or a digest)",
    "overlay": "dev, ci or prod",
    "context": "kube context (default: the one the overlay is meant for)",
    "force": "deploy even to a context the overlay is not meant for",
    "timeout": "rollout timeout (default 180s)",
}


@task(help=DEPLOY_HELP)
def deploy(
    c: Context,
    image: str,
    overlay: str = "ci",
    context: str = "",
    force: bool = False,
    timeout: str = "180s",
) -> None:
    """Apply an overlay with the image pinned; wait for the rollout; undo it when it fails."""
    tools = _tools()
    tools.context = context or expected_context(overlay) or CONTEXT
    _cluster_step(lambda: tools.preflight("kubectl"))
    try:
        deploy_overlay(tools, ROOT, overlay, image, force=force, timeout=timeout, log=console.print)
    except (DeployError, CommandError, SecretError) as exc:
        raise Exit(str(exc), code=1) from exc


@task(
    help={
        "context": "kube context (default kind-vaia)",
        "to_revision": "a revision from `rollout history`",
    }
)
def rollback(c: Context, context: str = "", to_revision: int = 0) -> None:
    """Undo the agent's last rollout (or go back to --to-revision) and wait for it."""
    tools = _tools()
    tools.context = context or CONTEXT
    _cluster_step(lambda: rollback_rollout(tools, to_revision or None))


CD_HELP = {
    "overlay": "where to deploy: dev, ci or prod",
    "registry": "where to push (default $REGISTRY or localhost:5001)",
    "offline": "build on the stand-in bases",
    "vuln_report": "a Trivy vulnerability report for the scan gate (see invoke --help scan)",
    "test_marker": "the pytest tiers of the test stage (default: unit or static)",
    "context": "kube context for deploy and smoke test",
    "dry_run": "print the plan; run nothing",
}


@task(help=CD_HELP)
def cd(
    c: Context,
    overlay: str = "ci",
    registry: str = "",
    offline: bool = False,
    vuln_report: str = "",
    test_marker: str = "unit or static",
    context: str = "",
    dry_run: bool = False,
) -> None:
    """test -> build -> scan -> push -> deploy -> smoke test, each a hard gate, then a summary."""
    registry = registry or os.environ.get("REGISTRY", DEFAULT_REGISTRY)
    state: dict[str, str] = {}
    tools = _tools()
    tools.context = context or expected_context(overlay) or CONTEXT

    def run_tests() -> str:
        c.run(f"{PY} -m pytest -q -m {shlex.quote(test_marker)}", pty=False)
        return f"pytest -m '{test_marker}'"

    def build_stage() -> str:
        result = build_image(_docker(), ROOT, offline=offline, log=console.print)
        state["image"] = result.tags[0]
        return f"{result.tags[0]}, {result.size_bytes / 1e6:.1f} MB"

    def scan_stage() -> str:
        _scan(_docker(), state["image"], vuln_report, "", "", False)
        return "no blocking finding"

    def push_stage() -> str:
        state["ref"] = push_image(_docker(), ROOT, state["image"], registry)
        return state["ref"]

    def deploy_stage() -> str:
        deploy_overlay(tools, ROOT, overlay, state["ref"], log=console.print)
        return f"overlay {overlay} on {tools.context}"

    def smoke_stage() -> str:
        with port_forward(tools, "vaia-agent", free_port()) as url:
            return smoke_test(url)

    stages = [
        Stage("test", f"pytest -m '{test_marker}'", run_tests),
        Stage("build", "invoke build" + (" --offline" if offline else ""), build_stage),
        Stage("scan", "invoke scan (Trivy gate)", scan_stage),
        Stage("push", f"invoke push --registry {registry}", push_stage),
        Stage(
            "deploy", f"invoke deploy --overlay {overlay} --context {tools.context}", deploy_stage
        ),
        Stage("smoke", "GET /ready, POST /v1/agent/infer through a port-forward", smoke_stage),
    ]
    results = run_stages(stages, dry_run=dry_run, log=console.print)
    table = Table(
        title="cd" + (" (dry run: nothing was run)" if dry_run else ""), title_justify="left"
    )
    for column in ("stage", "result", "duration", "detail"):
        table.add_column(column)
    for r in results:
        color = {"passed": "green", "FAILED": "red", "not run": "dim", "planned": "cyan"}[r.outcome]
        table.add_row(r.name, f"[{color}]{r.outcome}[/]", f"{r.seconds:.1f} s", r.detail)
    console.print(table)
    if not succeeded(results):
        raise Exit("cd stopped at a failed gate", code=1)


cluster = Collection("cluster")
cluster.add_task(cluster_up, "up")
cluster.add_task(cluster_down, "down")
compose = Collection("compose")
compose.add_task(compose_up, "up")
compose.add_task(compose_down, "down")
ns = Collection(
    dev, test, lint, doctor, seed, lock, build, scan, push, deploy, rollback, cd, bench, loadtest,
    up, down, cluster, compose,
)  # fmt: skip
