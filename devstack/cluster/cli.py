"""docker, kind and kubectl for the cluster's modules, through the one runner."""

from __future__ import annotations

from devstack.core.names import CONTEXT
from devstack.core.runner import Result, Runner


class ClusterCli:
    """docker, kind and kubectl; kubectl always with `context`, never whatever is current."""

    def __init__(self, runner: Runner, context: str = CONTEXT) -> None:
        self.runner = runner
        self.context = context

    def docker(self, *args: str, check: bool = True, stdin: str | None = None) -> Result:
        return self.runner.run("docker", *args, check=check, stdin=stdin)

    def kind(self, *args: str, check: bool = True) -> Result:
        return self.runner.run("kind", *args, check=check)

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> Result:
        return self.runner.run(
            "kubectl", "--context", self.context, *args, check=check, stdin=stdin
        )
