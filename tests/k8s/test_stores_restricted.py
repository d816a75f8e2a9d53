"""Chroma's pod as the manifest runs it (non-root, read-only roots, the data volume owned through
fsGroup), on the stand-in images (the same servers, from Debian and PyPI): Chroma on 127.0.0.1
behind its token proxy, the two sharing one network namespace as a pod's containers do."""

import httpx
import pytest

from devstack.cluster.render import render
from devstack.image.compose import standins_by_upstream_name
from devstack.verify import manifests as m
from tests.conftest import ROOT
from tests.support.processes import RESTRICTED, free_port, wait_until

pytestmark = pytest.mark.container
TOKEN = "restricted-pod-token-5b1c7e0d9a2f4c6b"  # the proxy asks for 32 characters


def mounts(container: dict, volumes: dict[str, dict], data: str, token_dir: str) -> list[str]:
    """docker flags for the container's volume mounts: the data volume, emptyDirs as tmpfs, the
    ConfigMap from the files kustomize generates it from, the Secret from a folder with the token."""
    flags: list[str] = []
    for mount in container["volumeMounts"]:
        volume = volumes.get(mount["name"], {})  # the data: a volumeClaimTemplate
        path = mount["mountPath"]
        if "emptyDir" in volume:
            flags += ["--tmpfs", path]
        elif "configMap" in volume:
            flags += ["-v", f"{ROOT / 'k8s/base/chromadb-auth'}:{path}:ro"]
        elif "secret" in volume:
            flags += ["-v", f"{token_dir}:{path}:ro"]
        else:
            flags += ["-v", f"{data}:{path}"]
    return flags


def run_pod(docker, images: dict[str, str], workload: dict, port: int, token_dir: str) -> list[str]:
    """The pod's containers, the first owning the network namespace (and the published port of
    the one that serves), the others joining it. Their names, first to last."""
    pod = m.pod_spec(workload)
    uid, group = pod["securityContext"]["runAsUser"], pod["securityContext"]["fsGroup"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    pod_name = f"vaia-restricted-{workload['metadata']['name']}-{port}"
    data = f"{pod_name}-data"
    docker.run(["volume", "create", data])
    # fsGroup: the volume belongs to the pod's group and is group-writable.
    setup = f"chgrp {group} /data && chmod 2775 /data"
    chroma_image = images[pod["containers"][0]["image"]]
    docker.run(["run", "--rm", "-u", "0", "-v", f"{data}:/data", "--entrypoint", "sh",
                chroma_image, "-c", setup])  # fmt: skip
    served = next(c for c in pod["containers"] if c.get("ports"))
    names: list[str] = []
    for container in pod["containers"]:
        name = f"{pod_name}-{container['name']}"
        network = (
            ["-p", f"127.0.0.1:{port}:{served['ports'][0]['containerPort']}"]
            if not names
            else ["--network", f"container:{names[0]}"]
        )
        env = [a for e in container.get("env", []) for a in ("-e", f"{e['name']}={e['value']}")]
        entry = ["--entrypoint", container["command"][0]] if "command" in container else []
        argv = [*container.get("command", [])[1:], *container.get("args", [])]
        docker.run(["run", "-d", "--name", name, *RESTRICTED, "-u", f"{uid}:{group}",
                    "--group-add", str(group), *network, *env, *entry,
                    *mounts(container, volumes, data, token_dir),
                    images[container["image"]], *argv])  # fmt: skip
        names.append(name)
    return names


def cleanup(docker, names: list[str]) -> None:
    docker.run(["rm", "-f", *reversed(names)], check=False)
    docker.run(["volume", "rm", "-f", f"{names[0].rsplit('-', 1)[0]}-data"], check=False)


def test_chroma_serves_behind_its_proxy_as_65532_with_read_only_roots(docker, tmp_path) -> None:
    images = standins_by_upstream_name(docker)
    workload = m.find(render(ROOT, "prod"), "StatefulSet", "chromadb")
    (tmp_path / "token").write_text(TOKEN)
    tmp_path.chmod(0o755)
    (tmp_path / "token").chmod(0o644)
    port = free_port()
    names = run_pod(docker, images, workload, port, str(tmp_path))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: httpx.get(base + "/api/v2/heartbeat").status_code == 200, 60, "chroma heartbeat"
        )
        collections = base + "/api/v2/tenants/default_tenant/databases/default_database/collections"
        refused = httpx.post(collections, json={"name": "restricted-check"})
        assert refused.status_code == 401, refused.text
        created = httpx.post(
            collections,
            json={"name": "restricted-check"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert created.status_code == 200, created.text
        files = docker.run(["exec", names[0], "find", "/data", "-maxdepth", "1"]).stdout
        assert "chroma.sqlite3" in files  # it really wrote its data to the volume
    finally:
        cleanup(docker, names)
