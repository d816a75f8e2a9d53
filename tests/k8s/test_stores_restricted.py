"""The store containers as the manifests run them (non-root, read-only root, the data volume owned
through fsGroup), on the stand-in images: the same servers, from Debian and PyPI."""

import httpx
import pytest

from devstack.cluster.render import render
from devstack.image.compose import standin_service_images
from devstack.verify import manifests as m
from tests.conftest import ROOT
from tests.support.processes import RESTRICTED, free_port, wait_until

pytestmark = pytest.mark.container


def run_like_the_manifest(docker, image: str, workload: dict, port: int, data_path: str) -> str:
    pod = m.pod_spec(workload)
    [container] = pod["containers"]
    uid = pod["securityContext"]["runAsUser"]
    group = pod["securityContext"]["fsGroup"]
    name = f"vaia-restricted-{workload['metadata']['name']}-{port}"
    volume = f"{name}-data"
    docker.run(["volume", "create", volume])
    # fsGroup: the volume belongs to the pod's group and is group-writable.
    docker.run(
        [
            "run",
            "--rm",
            "-u",
            "0",
            "-v",
            f"{volume}:/data",
            "--entrypoint",
            "sh",
            image,
            "-c",
            f"chgrp {group} /data && chmod 2775 /data",
        ]
    )
    env = [arg for e in container.get("env", []) for arg in ("-e", f"{e['name']}={e['value']}")]
    scratch = [
        arg
        for v in container["volumeMounts"]
        if v["mountPath"] != data_path
        for arg in ("--tmpfs", v["mountPath"])
    ]
    docker.run(
        [
            "run",
            "-d",
            "--name",
            name,
            *RESTRICTED,
            "-u",
            f"{uid}:{group}",
            "--group-add",
            str(group),
            "-v",
            f"{volume}:{data_path}",
            *scratch,
            *env,
            "-p",
            f"127.0.0.1:{port}:{container['ports'][0]['containerPort']}",
            image,
            *container["args"],
        ]
    )
    return name


def cleanup(docker, name: str) -> None:
    docker.run(["rm", "-f", name], check=False)
    docker.run(["volume", "rm", "-f", f"{name}-data"], check=False)


def test_chromadb_serves_and_persists_as_65532_with_a_read_only_root(docker) -> None:
    image = standin_service_images(docker)["CHROMA_IMAGE"]
    workload = m.find(render(ROOT, "prod"), "StatefulSet", "chromadb")
    port = free_port()
    name = run_like_the_manifest(docker, image, workload, port, "/data")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: httpx.get(base + "/api/v2/heartbeat").status_code == 200, 60, "chroma heartbeat"
        )
        created = httpx.post(
            base + "/api/v2/tenants/default_tenant/databases/default_database/collections",
            json={"name": "restricted-check"},
        )
        assert created.status_code == 200, created.text
        files = docker.run(["exec", name, "find", "/data", "-maxdepth", "1"]).stdout
        assert "chroma.sqlite3" in files  # it really wrote its data to the volume
    finally:
        cleanup(docker, name)
