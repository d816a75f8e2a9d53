"""The one front door: `invoke --list` shows every task, `invoke --help TASK` its flags.

Tasks live in one module per concern (dev, image, compose, cluster, release, perf, verify) and are
grouped here into namespaces; the names people type every day, and that the workflows and the
README use, are also at the root (`invoke build`, `invoke deploy`, `invoke cluster.up`, ...).
The logic is in `devstack/`; these modules only parse flags and print.
"""

from invoke.collection import Collection

from tasks import cluster, compose, dev, image, perf, release, verify

ns = Collection()
for root_task in (
    dev.dev, dev.setup, dev.test, dev.lint, dev.doctor, dev.seed, dev.lock, dev.vectors,
    image.build,
    release.scan, release.vulndb, release.push, release.deploy, release.rollback, release.cd,
    perf.bench, perf.loadtest,
    cluster.inner_loop_up, cluster.inner_loop_down,
    verify.verify,
):  # fmt: skip
    ns.add_task(root_task)

ns.add_collection(Collection("image", image.build))
ns.add_collection(Collection("compose", compose.up, compose.down))
ns.add_collection(Collection("cluster", cluster.create, cluster.delete, cluster.build_binaries))
ns.add_collection(
    Collection(
        "release",
        release.scan,
        release.vulndb,
        release.push,
        release.deploy,
        release.rollback,
        release.cd,
    )
)
ns.add_collection(Collection("perf", perf.bench, perf.loadtest))
