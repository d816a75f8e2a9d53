"""`invoke bench` leaves the checkout as it found it: every section writes under reports/, and
docs/benchmarks.md changes only with --update-docs. The measurements are replaced by fixed
results (their own tests run them for real); the task, its files and git are real."""

import contextlib
import shutil
import subprocess
import types
from pathlib import Path

import pytest

from agent.knowledge import evaluation
from devstack.perf import first_answer as newcomer
from devstack.perf import gemini as network
from devstack.perf import serving as traffic
from devstack.perf.breakdown import VenvBreakdown
from devstack.perf.image import ImageBench
from devstack.perf.loadtest import Percentiles
from devstack.perf.service import ServiceBench, Throughput
from tasks import perf
from tests.conftest import ROOT
from tests.support.tasks import run_invoke

pytestmark = pytest.mark.unit

SECTIONS = (
    "service",
    "gemini",
    "production",
    "answers",
    "serving",
    "first-answer",
    "image",
    "live-update",
)


def _load(name: str, rps: float = 100) -> Throughput:
    return Throughput(name, rps, 1.0, 2.0, 3.0, 0, requests=int(rps))


class _Tilt:
    """The real Tilt session's place: edits served after 0.5 s, a rebuild after 30 s."""

    def __init__(self, *args):
        self.edits = iter(range(100))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    @contextlib.contextmanager
    def agent(self):
        yield "http://127.0.0.1:1"

    def edit_and_wait(self, url):
        return types.SimpleNamespace(seconds=0.5, version=f"0.1.0+live.{next(self.edits)}")

    def dependency_change(self):
        return 30.0


async def _fixed_answers():
    case = evaluation.Case("why is my pod restarting?", ("runbook/pods > CrashLoopBackOff",))
    ranked = [evaluation.Ranked(case, ("runbook/pods > CrashLoopBackOff",), (0.6,))]
    refused = [evaluation.Ranked(evaluation.Case("capital of France?", ()), ("x",), (0.1,))]
    return [evaluation.evaluated("fixed", "space", ranked + refused, 0.3, "calibrated")]


SERVING = traffic.ServingBench(
    traffic.Quota(36, [0.1, 0.2], [True, True], 1),
    traffic.HangUp(40, 0.3, 3, 0, 40, 40),
    [
        traffic.Overload(
            600,
            20,
            1,
            Percentiles(1000, 1100, 10, 1200),
            Percentiles(4, 5, 90, 5),
            {},
            {"/health": [1.0], "/ready": [2.0], "/metrics": [3.0]},
        )
    ],
)


def fixed_measurements(monkeypatch) -> None:
    monkeypatch.setattr(perf.evaluation, "answers_bench", _fixed_answers)
    row = network.LoadRow(20, _load("infer, cache miss", 60), 5.0, 66.7, 2.0)
    service = ServiceBench([_load("bare"), _load("hit"), _load("miss", 50)], 1.0, 0.2)
    monkeypatch.setattr(perf, "service_bench", lambda *a, **k: service)
    stream = network.StreamRow(50, 40, 0, 260, 300, 1070, 1100, 200, 3.0)
    monkeypatch.setattr(
        perf.network,
        "gemini_bench",
        lambda *a, **k: network.GeminiBench(300, 1, [row, row], stream),
    )
    monkeypatch.setattr(
        perf.network,
        "production_bench",
        lambda *a, **k: network.ProductionBench(300, 1, _load("bare"), row, row),
    )
    monkeypatch.setattr(perf.traffic, "serving_bench", lambda *a, **k: SERVING)
    fresh = [newcomer.Checkout("this checkout", [newcomer.Round(1.3, 2.3, 3)])]
    monkeypatch.setattr(perf.newcomer, "first_answer_bench", lambda *a, **k: fresh)
    monkeypatch.setattr(perf, "docker", lambda: None)
    monkeypatch.setattr(
        perf, "image_bench", lambda *a, **k: ImageBench("vaia-agent:x", 1, [(1, "")], 1, 1, 8)
    )
    monkeypatch.setattr(perf, "venv_breakdown", lambda *a: VenvBreakdown([(1, "fastapi")], {}))
    monkeypatch.setattr(perf, "TiltSession", _Tilt)
    monkeypatch.setattr(perf, "tilt_build_env", lambda *a: {})
    cluster = types.SimpleNamespace(
        runner=types.SimpleNamespace(preflight=lambda *t: None),
        kubectl=lambda *a, **k: types.SimpleNamespace(returncode=0),
    )
    monkeypatch.setattr(perf, "ClusterCli", lambda *a: cluster)
    monkeypatch.setattr(perf, "runner", lambda: types.SimpleNamespace(preflight=lambda *t: None))


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A git checkout with the project's docs/benchmarks.md and .gitignore, committed."""
    root = tmp_path / "checkout"
    (root / "docs").mkdir(parents=True)
    shutil.copy(ROOT / "docs" / "benchmarks.md", root / "docs" / "benchmarks.md")
    shutil.copy(ROOT / ".gitignore", root / ".gitignore")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    monkeypatch.setattr(perf, "ROOT", root)
    fixed_measurements(monkeypatch)
    return root


def status(root: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True
    ).stdout


def bench(*flags: str) -> None:
    run_invoke("bench", *flags, exit=False)


@pytest.mark.parametrize("section", SECTIONS)
def test_every_section_writes_its_report_and_leaves_the_tree_clean(checkout, section) -> None:
    bench(f"--{section}")
    assert status(checkout) == ""
    [report] = (checkout / "reports").glob(f"bench-*/{section}.md")
    assert "| " in report.read_text()  # the section's table


@pytest.mark.parametrize("section", ["gemini", "answers"])
def test_sections_with_a_curve_draw_it(checkout, section) -> None:
    bench(f"--{section}")
    [plot] = (checkout / "reports").glob(f"bench-*/{section}.png")
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_the_gemini_section_has_its_streaming_row(checkout) -> None:
    bench("--gemini")
    [report] = (checkout / "reports").glob("bench-*/gemini.md")
    assert "| 50 | 40 | 260 | 300 | 200 | +60 ms | <= 100 ms |" in report.read_text()


def test_update_docs_rewrites_only_the_measured_block(checkout) -> None:
    before = (checkout / "docs" / "benchmarks.md").read_text()
    bench("--service", "--update-docs")
    assert status(checkout) == " M docs/benchmarks.md\n"
    after = (checkout / "docs" / "benchmarks.md").read_text()
    start = "<!-- invoke bench --service: start -->"
    assert before.split(start)[0] == after.split(start)[0]  # what precedes the block is kept
    assert "| hit | 100 | 1.00 | >= 0.5 |" in after


def test_agent_from_is_measured_by_each_section_that_takes_it(checkout, monkeypatch) -> None:
    other = checkout / "older"
    (other / "agent").mkdir(parents=True)
    (other / "agent" / "__init__.py").write_text("")
    asked = {}

    def recording(name, result):
        def measure(*args, **kwargs):
            asked[name] = kwargs.get("agent_from", args[0] if args else None)
            return result

        return measure

    monkeypatch.setattr(perf, "service_bench", recording("service", perf.service_bench()))
    monkeypatch.setattr(
        perf.network, "gemini_bench", recording("gemini", perf.network.gemini_bench())
    )
    monkeypatch.setattr(perf.traffic, "serving_bench", recording("serving", SERVING))
    bench("--service", "--gemini", "--serving", "--agent-from", str(other))
    assert asked == {"service": other, "gemini": other, "serving": other}


def test_agent_from_without_an_agent_package_is_refused(checkout, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        run_invoke("bench", "--gemini", "--agent-from", str(tmp_path))
    assert exited.value.code == 2
    assert "no agent package there" in capsys.readouterr().err
    assert not (checkout / "reports").exists()  # refused before anything ran
