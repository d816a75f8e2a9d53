"""Every overlay rendered with kustomize and checked as a cluster would, without one."""

import copy
import json
import re
import subprocess

import pytest
import yaml

from agent.app import create_app
from agent.config import Settings
from devstack.cluster.render import OVERLAYS, render
from devstack.release.trivy import config_scan, findings
from devstack.verify import manifests as m
from devstack.verify.policy import checkov_problems
from devstack.verify.report import STORES, schema_problems, trivy_problems
from tests.conftest import ROOT

pytestmark = pytest.mark.static


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, render(ROOT, request.param)


@pytest.fixture(scope="module")
def routes() -> set[str]:
    return set(create_app(Settings(_env_file=None)).openapi()["paths"])


def test_every_object_validates_strictly(rendered) -> None:
    _, objs = rendered
    assert schema_problems(objs) == []


def test_the_contract_names_are_all_there(rendered) -> None:
    _, objs = rendered
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert {
        ("Namespace", "vaia"),
        ("Deployment", "vaia-agent"),
        ("Service", "vaia-agent"),
        ("HorizontalPodAutoscaler", "vaia-agent"),
        ("PodDisruptionBudget", "vaia-agent"),
        ("ConfigMap", "vaia-agent-config"),
        ("Secret", "vaia-agent-secrets"),
        ("Ingress", "vaia-agent"),
        ("NetworkPolicy", "vaia-agent"),
        ("StatefulSet", "redis"),
        ("Service", "redis"),
        ("StatefulSet", "chromadb"),
        ("Service", "chromadb"),
    } <= names
    for obj in objs:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "vaia", obj["metadata"]["name"]
        labels = obj["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "vaia", obj["metadata"]["name"]
    for workload in m.workloads(objs):
        labels = m.pod_labels(workload)
        assert {
            "app.kubernetes.io/name",
            "app.kubernetes.io/component",
            "app.kubernetes.io/part-of",
        } <= set(labels)
    assert m.find(objs, "Service", "redis")["spec"]["ports"][0]["port"] == 6379
    assert m.find(objs, "Service", "chromadb")["spec"]["ports"][0]["port"] == 8000
    service = m.find(objs, "Service", "vaia-agent")["spec"]
    assert service["type"] == "ClusterIP" and service["ports"][0]["port"] == 80


def test_wiring_is_consistent(rendered, routes) -> None:
    _, objs = rendered
    assert m.check_service_selectors(objs) == []
    assert m.check_target_ports(objs) == []
    assert m.check_ingress_backends(objs) == []
    assert m.check_probes(objs, routes) == []
    assert m.check_hpa(objs) == []
    assert m.check_config_refs(objs) == []


def test_agent_pods_are_production_shaped(rendered) -> None:
    _, objs = rendered
    deployment = m.find(objs, "Deployment", "vaia-agent")
    spec = m.pod_spec(deployment)
    [agent] = spec["containers"]
    assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(agent)
    assert agent["livenessProbe"]["httpGet"]["path"] == "/health"
    assert agent["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert agent["resources"]["requests"]["cpu"] and agent["resources"]["limits"]["memory"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert (
        annotations["prometheus.io/scrape"] == "true"
        and annotations["prometheus.io/path"] == "/metrics"
    )
    assert annotations["prometheus.io/port"] == "8080"
    # Draining: endpoints leave during preStop, then uvicorn drains for SHUTDOWN_GRACE_SECONDS.
    grace = int(m.find(objs, "ConfigMap", "vaia-agent-config")["data"]["SHUTDOWN_GRACE_SECONDS"])
    pre_stop = agent["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] > pre_stop + grace
    assert spec["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"


def test_config_map_names_only_real_settings(rendered) -> None:
    _, objs = rendered
    keys = set(m.find(objs, "ConfigMap", "vaia-agent-config")["data"])
    assert keys <= {name.upper() for name in Settings.model_fields}
    secret = m.find(objs, "Secret", "vaia-agent-secrets")
    # The seed's contract: GEMINI_API_KEY and CHROMA_HOST come from the Secret, and only there;
    # so does the token Chroma's auth proxy asks for.
    assert set(secret["stringData"]) == {"GEMINI_API_KEY", "CHROMA_HOST", "CHROMA_AUTH_TOKEN"}
    assert not keys & set(secret["stringData"])


def test_the_agent_reads_its_secrets_as_files_it_cannot_do_without(rendered) -> None:
    _, objs = rendered
    pod = m.pod_spec(m.find(objs, "Deployment", "vaia-agent"))
    [agent] = pod["containers"]
    env = {e["name"]: e for e in agent.get("env", [])}
    assert not any("valueFrom" in e for e in env.values()), "no secret as an env variable"
    mount = next(v for v in agent["volumeMounts"] if v["name"] == "secrets")
    assert env["SECRETS_DIR"]["value"] == mount["mountPath"] and mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == "secrets")
    assert volume["secret"]["secretName"] == "vaia-agent-secrets"
    assert not volume["secret"].get("optional")


def test_chroma_listens_on_its_loopback_behind_a_proxy_that_reads_the_token_as_a_file(
    rendered,
) -> None:
    _, objs = rendered
    pod = m.pod_spec(m.find(objs, "StatefulSet", "chromadb"))
    chroma, proxy = pod["containers"]
    assert chroma["args"][chroma["args"].index("--host") + 1] == "127.0.0.1"
    assert "ports" not in chroma
    assert [p["containerPort"] for p in proxy["ports"]] == [8000]
    service = m.find(objs, "Service", "chromadb")
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(8000, "http")]
    env = {e["name"]: e.get("value") for e in proxy["env"]}
    token = next(v for v in pod["volumes"] if v["name"] == "auth-token")["secret"]
    mount = next(v for v in proxy["volumeMounts"] if v["name"] == "auth-token")
    assert token == {
        "secretName": "vaia-agent-secrets",
        "items": [{"key": "CHROMA_AUTH_TOKEN", "path": "token"}],
    }
    assert env["CHROMA_AUTH_TOKEN_FILE"] == mount["mountPath"] + "/token"
    assert not any("valueFrom" in e for e in proxy["env"]), "no secret as an env variable"


def test_the_namespace_enforces_pod_security_restricted_at_the_pinned_minor(rendered) -> None:
    """The real PodSecurity admission enforces it (tests/devstack/cluster/test_local.py)."""
    from devstack.core.names import KUBERNETES_MINOR

    _, objs = rendered
    namespace = m.find(objs, "Namespace", "vaia")["metadata"]["labels"]
    assert namespace["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespace["pod-security.kubernetes.io/enforce-version"] == f"v{KUBERNETES_MINOR}"


def test_network_policy_admits_exactly_the_intended_traffic(rendered) -> None:
    _, objs = rendered
    flows = m.allowed_flows(objs)
    assert m.Flow("vaia-agent", "redis", 6379) in flows
    assert m.Flow("vaia-agent", "chromadb", 8000) in flows
    assert m.Flow(m.EXTERNAL, "vaia-agent", 8080) in flows
    stores = {f for f in flows if f.destination in ("redis", "chromadb")}
    assert stores == {m.Flow("vaia-agent", "redis", 6379), m.Flow("vaia-agent", "chromadb", 8000)}
    # The agent talks to nothing else in the namespace (its own replicas included).
    assert {f.destination for f in flows if f.source == "vaia-agent"} == {"redis", "chromadb"}
    assert m.check_network_policy(objs, "vaia-agent", STORES) == []


def test_trivy_finds_no_high_or_critical_in_the_rendered_manifests(rendered) -> None:
    _, objs = rendered
    assert trivy_problems(objs) == []


def test_checkov_findings_are_fixed_or_skipped_with_a_reason(rendered) -> None:
    _, objs = rendered
    assert checkov_problems(objs) == []


def test_checkov_catches_an_unannotated_finding_and_a_reasonless_skip(base) -> None:
    objs = copy.deepcopy(base)
    redis = m.find(objs, "StatefulSet", "redis")
    redis["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 999
    redis["metadata"]["annotations"]["checkov.io/skip1"] = "CKV_K8S_15=ok"
    problems = checkov_problems(objs)
    assert any(p.startswith("CKV_K8S_40 on StatefulSet.vaia.redis") for p in problems)
    assert "CKV_K8S_15 on StatefulSet.vaia.redis is skipped without reason" in problems


def test_overlay_specifics() -> None:
    dev, ci, prod = (render(ROOT, o) for o in OVERLAYS)
    agent_image = {
        name: m.pod_spec(m.find(objs, "Deployment", "vaia-agent"))["containers"][0]["image"]
        for name, objs in (("dev", dev), ("ci", ci), ("prod", prod))
    }
    assert agent_image["dev"] == "vaia-agent"  # Tilt substitutes what it built
    assert re.fullmatch(
        r"ghcr\.io/[\w.-]+/vaia-agent(:sha-[0-9a-f]{7}|@sha256:[0-9a-f]{64})", agent_image["prod"]
    )
    assert agent_image["ci"].startswith("localhost:5001/vaia-agent:sha-")
    for objs in (dev, ci, prod):
        for workload in m.workloads(objs):
            for container in m.pod_spec(workload)["containers"]:
                assert (
                    not container["image"].endswith(":latest") and ":" in container["image"]
                ) or container["image"] == "vaia-agent"
    dev_hpa = m.find(dev, "HorizontalPodAutoscaler", "vaia-agent")["spec"]
    prod_hpa = m.find(prod, "HorizontalPodAutoscaler", "vaia-agent")["spec"]
    assert dev_hpa["metrics"][0]["resource"]["target"]["averageUtilization"] <= 30
    assert prod_hpa["minReplicas"] >= 3
    dev_pod = m.pod_spec(m.find(dev, "Deployment", "vaia-agent"))
    assert dev_pod["containers"][0]["args"] == ["serve", "--reload"]
    # Live update's target is writable (an emptyDir filled from the image), the root is not.
    assert {"name": "code", "mountPath": "/app/agent"} in dev_pod["containers"][0]["volumeMounts"]
    copy_code = dev_pod["initContainers"][0]["command"]
    assert copy_code[:2] == ["/opt/venv/bin/python", "-c"]  # both targets have it; only dev has cp
    ingress = m.find(prod, "Ingress", "vaia-agent")["spec"]
    assert (
        ingress["tls"][0]["hosts"] == [ingress["rules"][0]["host"]]
        and ingress["tls"][0]["secretName"]
    )
    assert "replicas" not in m.find(prod, "Deployment", "vaia-agent")["spec"]


def test_every_overlay_renders_from_a_fresh_clone_with_no_extra_step(tmp_path) -> None:
    """What a clone has: tracked files and new ones not ignored; never a git-ignored file that a
    task writes first (the first round needed k8s/base/secrets.env)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "k8s"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).exists():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    for overlay in OVERLAYS:
        objs = render(tmp_path, overlay)
        assert m.find(objs, "Secret", "vaia-agent-secrets") is not None, overlay


def test_no_secret_value_is_committed(rendered) -> None:
    _, objs = rendered
    secret = m.find(objs, "Secret", "vaia-agent-secrets")
    assert secret["stringData"] == {
        "CHROMA_HOST": "chromadb",
        "GEMINI_API_KEY": "",
        "CHROMA_AUTH_TOKEN": "",
    }
    assert "data" not in secret
    assert not list((ROOT / "k8s").rglob("*.env"))


# --- the checks catch real mistakes --------------------------------------------------------------


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return render(ROOT, "prod")


def broken(objs: list[dict], kind: str, name: str, change) -> list[dict]:
    copied = copy.deepcopy(objs)
    change(m.find(copied, kind, name))
    return copied


def test_checks_catch_a_wrong_selector(base) -> None:
    objs = broken(
        base,
        "Service",
        "redis",
        lambda s: s["spec"]["selector"].update({"app.kubernetes.io/name": "redsi"}),
    )
    assert m.check_service_selectors(objs)


def test_checks_catch_a_wrong_target_port(base) -> None:
    objs = broken(
        base, "Service", "vaia-agent", lambda s: s["spec"]["ports"][0].update({"targetPort": 8081})
    )
    assert m.check_target_ports(objs)


def test_checks_catch_an_ingress_backend_on_a_port_the_service_lacks(base) -> None:
    def change(ingress):
        ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] = {
            "name": "https"
        }

    assert m.check_ingress_backends(broken(base, "Ingress", "vaia-agent", change)) == [
        "Ingress vaia-agent: backend vaia-agent:'https' is not a port of a Service here"
    ]


def test_checks_catch_a_probe_on_a_missing_route(base, routes) -> None:
    def change(d):
        d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] = (
            "/readyz"
        )

    assert m.check_probes(broken(base, "Deployment", "vaia-agent", change), routes)


def test_checks_catch_hpa_problems(base) -> None:
    no_request = broken(
        base,
        "Deployment",
        "vaia-agent",
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"].pop(
            "cpu"
        ),
    )
    assert any("no CPU request" in p for p in m.check_hpa(no_request))
    fights = broken(base, "Deployment", "vaia-agent", lambda d: d["spec"].update({"replicas": 2}))
    assert any("fights the HPA" in p for p in m.check_hpa(fights))


def test_checks_catch_a_missing_config_key(base) -> None:
    def change(d):
        d["spec"]["template"]["spec"]["containers"][0]["env"].append(
            {
                "name": "X",
                "valueFrom": {"configMapKeyRef": {"name": "vaia-agent-config", "key": "NOPE"}},
            }
        )

    assert m.check_config_refs(broken(base, "Deployment", "vaia-agent", change))


def test_checks_catch_an_open_store(base) -> None:
    objs = [
        o for o in base if not (o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "redis")
    ]
    assert m.Flow(m.EXTERNAL, "redis", 6379) in m.allowed_flows(objs)
    assert m.check_network_policy(objs, "vaia-agent", STORES) == [
        "(outside the namespace) reaches the store redis:6379",
        "chromadb reaches the store redis:6379",
    ]


def test_validator_catches_an_unknown_field(base) -> None:
    deployment = copy.deepcopy(m.find(base, "Deployment", "vaia-agent"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    [problem] = schema_problems([deployment])
    assert "livenessprobe" in problem


def test_trivy_flags_a_privileged_pod(tmp_path) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad"},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox:1.36", "securityContext": {"privileged": True}}
            ]
        },
    }
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(pod))
    assert any(f.severity in ("HIGH", "CRITICAL") for f in findings(config_scan(path)))


def test_patches_match_by_name_never_by_list_position() -> None:
    """Strategic-merge patches only: a JSON patch path such as containers/0 patches whatever is
    first after a reordering."""
    kustomizations = sorted((ROOT / "k8s").rglob("kustomization.yaml"))
    assert len(kustomizations) >= 6
    for path in kustomizations:
        for patch in yaml.safe_load(path.read_text()).get("patches", []):
            body = yaml.safe_load(patch.get("patch", "")) if "patch" in patch else None
            assert isinstance(body, dict) and "kind" in body, f"{path}: not a strategic merge"
            assert not re.search(r"/\d+(/|$)", patch.get("patch", "")), f"{path}: positional"


def test_live_update_wiring_is_a_component_only_dev_uses() -> None:
    component = yaml.safe_load((ROOT / "k8s/components/live-update/kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    for overlay in OVERLAYS:
        spec = yaml.safe_load((ROOT / f"k8s/overlays/{overlay}/kustomization.yaml").read_text())
        assert ("../../components/live-update" in spec.get("components", [])) == (overlay == "dev")


def test_the_copy_into_live_updates_emptydir_brings_every_file_and_can_run_again(tmp_path) -> None:
    """The init container's script, run here on agent/ into an existing directory (as the
    emptyDir is): every file arrives, and a second run into the same directory (an init
    container run again) succeeds too. The kind tier runs it in both image targets."""
    import sys

    dev_pod = m.pod_spec(m.find(render(ROOT, "dev"), "Deployment", "vaia-agent"))
    script = dev_pod["initContainers"][0]["command"][2]
    source = ROOT / "agent"
    target = tmp_path / "code"
    target.mkdir()
    script = script.replace('"/app/agent"', repr(str(source))).replace('"/code"', repr(str(target)))
    for _ in range(2):
        subprocess.run([sys.executable, "-c", script], check=True)
    copied = {p.relative_to(target) for p in target.rglob("*.py")}
    assert copied == {p.relative_to(source) for p in source.rglob("*.py")}
    assert (target / "app.py").read_bytes() == (source / "app.py").read_bytes()
