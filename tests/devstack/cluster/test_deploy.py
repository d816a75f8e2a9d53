"""invoke deploy / rollback / cd with every kubectl call recorded."""

import base64
import re

import pytest
from invoke import Exit, MockContext
from invoke import Result as InvokeResult

from devstack.cluster.cli import ClusterCli
from devstack.cluster.deploy import DeployError, check_context, deploy, pin_image, rollback
from devstack.cluster.render import render
from devstack.cluster.secrets import SecretError
from devstack.core.runner import Result, Runner
from tests.conftest import ROOT

pytestmark = pytest.mark.unit
IMAGE = "ghcr.io/vaia-devstack/vaia-agent@sha256:" + "a" * 64


REVISION = "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
APPLY = ["apply", "--server-side", "--field-manager=vaia-deploy", "--force-conflicts", "-f", "-"]
STATUS = ["-n", "vaia", "rollout", "status", "deployment/vaia-agent", "--timeout=180s"]
UNDO = ["-n", "vaia", "rollout", "undo", "deployment/vaia-agent"]
GET_REVISION = ["-n", "vaia", "get", "deployment/vaia-agent", "-o", REVISION, "--ignore-not-found"]
GET_SECRET = [
    "-n", "vaia", "get", "secret", "vaia-agent-secrets",
    "-o", "jsonpath={.metadata.annotations}", "--ignore-not-found",
]  # fmt: skip
GET_TOKEN = [
    "-n", "vaia", "get", "secret", "vaia-agent-secrets", "--ignore-not-found",
    "-o", "jsonpath={.data.CHROMA_AUTH_TOKEN}",
]  # fmt: skip
HELD_TOKEN = "held-" + "t" * 40


class Kubectl:
    def __init__(
        self, rollout_ok: bool = True, revision: str = "3", annotations: str = "", token: str = ""
    ) -> None:
        self.rollout_ok = rollout_ok
        self.revision = revision
        self.annotations = annotations
        self.token = token
        self.calls: list[list[str]] = []
        self.applied = ""

    def __call__(self, argv, how) -> Result:
        args = list(argv[1:])
        self.calls.append(args)
        if "apply" in args:
            self.applied = how.stdin
        if args[2:] == GET_REVISION:
            return Result(0, self.revision)
        if args[2:] == GET_SECRET:
            return Result(0, self.annotations)
        if args[2:] == GET_TOKEN:
            return Result(0, base64.b64encode(self.token.encode()).decode() if self.token else "")
        if (
            "status" in args
            and not self.rollout_ok
            and not any("undo" in " ".join(c) for c in self.calls)
        ):
            return Result(1, "", "deadline exceeded")
        return Result(0)


def tools(kubectl: Kubectl) -> ClusterCli:
    return ClusterCli(Runner(resolve=lambda name: [f"/fake/{name}"], execute=kubectl), "kind-vaia")


def test_a_good_rollout_applies_the_pinned_image(tmp_path) -> None:
    kubectl = Kubectl()
    deploy(tools(kubectl), ROOT, "ci", IMAGE, log=lambda _: None)
    assert [c[2:] for c in kubectl.calls] == [GET_TOKEN, GET_REVISION, APPLY, GET_SECRET, STATUS]
    assert all(c[:2] == ["--context", "kind-vaia"] for c in kubectl.calls)
    assert f"image: {IMAGE}" in kubectl.applied
    assert "image: localhost:5001/vaia-agent:sha-0000000" not in kubectl.applied


def test_the_key_reaches_kubectl_on_stdin_only(monkeypatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "k-deploy-123")
    kubectl = Kubectl()
    deploy(tools(kubectl), ROOT, "ci", IMAGE, log=lambda _: None)
    assert "GEMINI_API_KEY: k-deploy-123" in kubectl.applied
    assert not any("k-deploy-123" in " ".join(call) for call in kubectl.calls)
    assert not list((ROOT / "k8s").rglob("*.env")), "no file was written"


def applied_token(kubectl: Kubectl) -> str:
    [token] = re.findall(r"CHROMA_AUTH_TOKEN: (\S+)", kubectl.applied)
    return token


def test_chroma_s_token_stays_the_one_the_cluster_holds_else_a_new_one(monkeypatch) -> None:
    held = Kubectl(token=HELD_TOKEN)
    deploy(tools(held), ROOT, "ci", IMAGE, log=lambda _: None)
    assert applied_token(held) == HELD_TOKEN  # the running proxy and agents keep working
    first, second = Kubectl(), Kubectl()
    for kubectl in (first, second):
        deploy(tools(kubectl), ROOT, "ci", IMAGE, log=lambda _: None)
    assert len(applied_token(first)) >= 32 and applied_token(first) != applied_token(second)
    monkeypatch.setenv("CHROMA_AUTH_TOKEN", "given-" + "g" * 40)
    deploy(tools(held), ROOT, "ci", IMAGE, log=lambda _: None)
    assert applied_token(held) == "given-" + "g" * 40
    for kubectl in (held, first):
        assert not any(applied_token(kubectl) in " ".join(call) for call in kubectl.calls)
    monkeypatch.setenv("CHROMA_AUTH_TOKEN", "short")
    with pytest.raises(SecretError, match="CHROMA_AUTH_TOKEN must be 32 or more"):
        deploy(tools(Kubectl()), ROOT, "ci", IMAGE, log=lambda _: None)


def test_a_failed_rollout_is_undone_and_fails() -> None:
    kubectl = Kubectl(rollout_ok=False)
    with pytest.raises(DeployError, match="failed and was rolled back to revision 3"):
        deploy(tools(kubectl), ROOT, "ci", IMAGE, log=lambda _: None)
    assert [c[2:] for c in kubectl.calls] == [
        GET_TOKEN, GET_REVISION, APPLY, GET_SECRET, STATUS, UNDO, STATUS,
    ]  # fmt: skip


def test_a_failed_first_deploy_says_there_is_no_earlier_revision() -> None:
    kubectl = Kubectl(rollout_ok=False, revision="")
    with pytest.raises(DeployError, match=r"first deploy .* no earlier revision to go back to"):
        deploy(tools(kubectl), ROOT, "ci", IMAGE, log=lambda _: None)
    assert [c[2:] for c in kubectl.calls] == [GET_TOKEN, GET_REVISION, APPLY, GET_SECRET, STATUS]


def test_an_annotation_left_by_a_client_side_apply_is_taken_off_the_secret() -> None:
    kubectl = Kubectl(annotations='{"kubectl.kubernetes.io/last-applied-configuration": "{}"}')
    deploy(tools(kubectl), ROOT, "ci", IMAGE, log=lambda _: None)
    assert kubectl.calls[4][2:] == [
        "-n", "vaia", "annotate", "secret", "vaia-agent-secrets",
        "kubectl.kubernetes.io/last-applied-configuration-",
    ]  # fmt: skip


def test_mutable_images_are_refused() -> None:
    objs = render(ROOT, "ci")
    for image in ("vaia-agent:latest", "vaia-agent", "ghcr.io/x/vaia-agent:main"):
        with pytest.raises(DeployError, match="not immutable"):
            pin_image(objs, image)
    assert pin_image(objs, "vaia-agent:sha-0123456")
    assert pin_image(objs, "vaia-agent:1.2.3")


def test_the_wrong_context_is_refused_unless_forced(monkeypatch) -> None:
    with pytest.raises(DeployError, match="refusing to deploy overlay ci to context 'prod-eu'"):
        check_context("ci", "prod-eu", force=False)
    check_context("ci", "prod-eu", force=True)
    check_context("ci", "kind-vaia", force=False)
    monkeypatch.delenv("VAIA_PROD_CONTEXT", raising=False)
    with pytest.raises(DeployError, match="set VAIA_PROD_CONTEXT"):
        check_context("prod", "kind-vaia", force=False)
    monkeypatch.setenv("VAIA_PROD_CONTEXT", "prod-eu")
    check_context("prod", "prod-eu", force=False)
    with pytest.raises(DeployError, match="unknown overlay"):
        check_context("staging", "kind-vaia", force=True)


def test_rollback_undoes_and_waits() -> None:
    kubectl = Kubectl()
    rollback(tools(kubectl), to_revision=3)
    assert [c[2:] for c in kubectl.calls] == [
        ["-n", "vaia", "rollout", "undo", "deployment/vaia-agent", "--to-revision=3"],
        ["-n", "vaia", "rollout", "status", "deployment/vaia-agent", "--timeout=180s"],
    ]


def test_cd_dry_run_runs_nothing(monkeypatch, capsys) -> None:
    from devstack.release import cd as chain
    from tasks import release

    def forbidden(*args, **kwargs):
        raise AssertionError("the dry run ran something")

    for name in ("build_image", "scan_images", "push", "deploy", "smoke_test", "port_forward"):
        monkeypatch.setattr(chain, name, forbidden)
    monkeypatch.setattr(release, "docker", forbidden)
    release.cd(MockContext(), dry_run=True)
    out = capsys.readouterr().out
    for stage in ("test", "build", "scan", "push", "deploy", "smoke"):
        assert stage in out
    assert "planned" in out and "nothing was run" in out


def test_cd_stops_at_the_first_failed_gate(monkeypatch, capsys) -> None:
    from devstack.release import cd as chain
    from tasks import release

    ran = []

    def failing_build(*args, **kwargs):
        ran.append("build")
        raise RuntimeError("build broke")

    monkeypatch.setattr(chain, "build_image", failing_build)
    monkeypatch.setattr(release, "docker", lambda: None)
    for name in ("scan_images", "push", "deploy", "smoke_test"):
        monkeypatch.setattr(chain, name, lambda *a, name=name, **k: ran.append(name))
    c = MockContext(run=InvokeResult(), repeat=True)
    with pytest.raises(Exit, match="cd stopped at a failed gate"):
        release.cd(c)
    assert ran == ["build"]
    out = capsys.readouterr().out
    assert "FAILED" in out and "not run" in out and "build broke" in out


def test_cd_hands_the_built_image_and_the_pushed_reference_to_the_next_stages(
    monkeypatch,
) -> None:
    from devstack.image.docker import BuildResult
    from devstack.release import cd as chain
    from devstack.release.pipeline import run_stages, succeeded

    seen = {}
    monkeypatch.setattr(
        chain, "build_image", lambda *a, **k: BuildResult(["vaia-agent:sha-1234567"], "id", 1, "")
    )
    monkeypatch.setattr(
        chain, "scan_images", lambda d, r, targets, *a, **k: seen.update(scan=targets) or []
    )
    monkeypatch.setattr(chain, "push", lambda d, r, image, registry: f"{registry}/x@sha256:1")
    monkeypatch.setattr(chain, "deploy", lambda cli, r, o, ref, **k: seen.update(deploy=ref))

    class Forward:
        def __init__(self, *args):
            pass

        def __enter__(self):
            return "http://127.0.0.1:1"

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(chain, "port_forward", Forward)
    monkeypatch.setattr(chain, "smoke_test", lambda url: "ok")
    plan = chain.CdPlan(ROOT, "ci", "localhost:5001", False, chain.ScanOptions(), "unit")
    stages = chain.cd_stages(plan, tools(Kubectl()), lambda marker: None, lambda: None, print)
    assert succeeded(run_stages(stages, dry_run=False, log=lambda _: None))
    assert seen["deploy"] == "localhost:5001/x@sha256:1"
    scanned = {t.name for t in seen["scan"]}
    assert "vaia-agent:sha-1234567" in scanned and "chromadb/chroma:1.5.9" in scanned


def test_both_secret_values_go_into_the_secret_and_loopback_chroma_is_refused() -> None:
    from devstack.cluster.deploy import manifests_for
    from devstack.cluster.secrets import SecretError
    from devstack.verify import manifests as m

    objs = manifests_for(
        ROOT, "ci", IMAGE, environ={"GEMINI_API_KEY": "k", "CHROMA_HOST": "chroma.data.svc"}
    )
    secret = m.find(objs, "Secret", "vaia-agent-secrets")
    assert secret["stringData"] == {
        "GEMINI_API_KEY": "k",
        "CHROMA_HOST": "chroma.data.svc",
        "CHROMA_AUTH_TOKEN": "",  # filled by deploy() from the cluster's own, or a new one
    }
    for host in ("127.0.0.1", "localhost", "::1"):
        with pytest.raises(SecretError, match="loopback"):
            manifests_for(ROOT, "ci", IMAGE, environ={"CHROMA_HOST": host})
    with pytest.raises(SecretError, match="not a host name"):
        manifests_for(ROOT, "ci", IMAGE, environ={"CHROMA_HOST": "http://chromadb:8000"})


def test_prod_without_a_key_is_refused_unless_offline_is_asked_for() -> None:
    from devstack.cluster.deploy import manifests_for

    with pytest.raises(DeployError, match="refusing to deploy prod without GEMINI_API_KEY"):
        manifests_for(ROOT, "prod", IMAGE, environ={})
    assert manifests_for(ROOT, "prod", IMAGE, environ={}, allow_offline=True)
    assert manifests_for(ROOT, "prod", IMAGE, environ={"GEMINI_API_KEY": "k"})
    assert manifests_for(ROOT, "ci", IMAGE, environ={})  # ci may answer offline


def test_a_private_registry_gets_a_pull_secret_applied_before_the_pods_that_need_it() -> None:
    import base64
    import json

    from devstack.cluster.deploy import manifests_for
    from devstack.cluster.secrets import SecretError
    from devstack.verify import manifests as m

    environ = {"REGISTRY_USERNAME": "octo", "REGISTRY_PASSWORD": "ghs_token"}
    objs = manifests_for(ROOT, "ci", IMAGE, environ=environ, pull_secret=True)
    assert [o["kind"] for o in objs[:2]] == ["Namespace", "Secret"]
    config = json.loads(objs[1]["stringData"][".dockerconfigjson"])
    assert base64.b64decode(config["auths"]["ghcr.io"]["auth"]) == b"octo:ghs_token"
    pod = m.pod_spec(m.find(objs, "Deployment", "vaia-agent"))
    assert pod["imagePullSecrets"] == [{"name": "vaia-agent-pull"}]
    redis = m.pod_spec(m.find(objs, "StatefulSet", "redis"))
    assert "imagePullSecrets" not in redis  # a public image
    with pytest.raises(SecretError, match="REGISTRY_USERNAME"):
        manifests_for(ROOT, "ci", IMAGE, environ={}, pull_secret=True)
