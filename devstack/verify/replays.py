"""The two ways this repository reaches a cluster, replayed on a model of an empty one:

- `tilt_up`: the Tiltfile loaded as Tilt loads it (`tiltfile`), then a first `tilt up` on a new
  kind cluster that `invoke cluster.up` prepared (`kind`, `tilt_engine`);
- `deploy`: the stream `invoke deploy` sends to `kubectl apply`, for one overlay, on the cluster
  that overlay is meant for (kind after `cluster.up` for dev and ci; any cluster for prod).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from devstack.cluster.deploy import manifests_for
from devstack.cluster.render import render_dir
from devstack.core.names import CONTEXT, IMAGE, REGISTRY_HOST
from devstack.verify.apiserver import ApiServer
from devstack.verify.kind import after_cluster_up, kubectl_world
from devstack.verify.tilt_engine import Replay, replay_kubectl_apply, replay_tilt_up
from devstack.verify.tiltfile import TiltfileModel, World, evaluate

# An immutable reference of the form `invoke deploy` accepts, for the deploy replays.
PINNED_IMAGE = f"{REGISTRY_HOST}/{IMAGE}:sha-0000000"


def prepared_kind_cluster(root: Path) -> ApiServer:
    return after_cluster_up(ApiServer.kind(), root)


def load_tiltfile(
    root: Path,
    *,
    context: str = CONTEXT,
    environ: Mapping[str, str] | None = None,
    world: World | None = None,
    source: str | None = None,
) -> TiltfileModel:
    """The Tiltfile as `tilt up` loads it, its `local()` answered by `world` (default: a kind
    cluster after `invoke cluster.up`). `source` stands in for the Tiltfile's text."""
    return evaluate(
        root / "Tiltfile",
        context=context,
        environ=environ or {},
        world=world or kubectl_world(prepared_kind_cluster(root)),
        render=render_dir,
        source=source,
    )


def tilt_up(root: Path, model: TiltfileModel | None = None) -> Replay:
    """A first `tilt up` on a new kind cluster after `invoke cluster.up`."""
    server = prepared_kind_cluster(root)
    loaded = model or load_tiltfile(root, world=kubectl_world(server))
    return replay_tilt_up(loaded, server)


def deploy_target(root: Path, overlay: str) -> ApiServer:
    return prepared_kind_cluster(root) if overlay in ("dev", "ci") else ApiServer.cluster()


# What CD's deploy jobs set (a stand-in value): prod refuses to deploy without a key.
DEPLOY_ENVIRON = {"GEMINI_API_KEY": "stand-in-key-of-the-replay"}


def deploy(root: Path, overlay: str) -> list[str]:
    """Problems of `invoke deploy --overlay <overlay>` on the empty cluster it is meant for."""
    stream = manifests_for(root, overlay, PINNED_IMAGE, environ=DEPLOY_ENVIRON)
    return replay_kubectl_apply(stream, deploy_target(root, overlay))
