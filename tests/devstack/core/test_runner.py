"""The one runner: real commands, the preflight first, failures as one-line errors."""

import pytest

from devstack.core.errors import CommandError, MissingToolError
from devstack.core.runner import Result, Runner

pytestmark = pytest.mark.unit


def test_it_runs_for_real_and_never_echoes_stdin() -> None:
    echoed = []
    runner = Runner(echo=echoed.append, resolve=lambda name: [name])
    assert runner.run("cat", stdin="secret-stdin").stdout == "secret-stdin"
    assert echoed == ["$ cat"]
    assert runner.run("false", check=False).returncode == 1


def test_a_failure_is_one_line_with_the_output_as_detail() -> None:
    runner = Runner(resolve=lambda name: ["sh", "-c"])
    with pytest.raises(CommandError) as failed:
        runner.run("sh", "echo first >&2; echo 'the last line' >&2; exit 3")
    assert str(failed.value) == "sh failed (exit 3): the last line"
    assert failed.value.detail == "first\nthe last line"


def test_a_timeout_is_a_command_error() -> None:
    runner = Runner(resolve=lambda name: ["sleep"])
    with pytest.raises(CommandError, match="did not finish within 0 s"):
        runner.run("sleep", "5", timeout=0.2)


def test_the_preflight_resolves_once_and_a_missing_tool_stops_before_anything_runs() -> None:
    resolved, ran = [], []

    def resolve(name: str) -> list[str]:
        resolved.append(name)
        if name == "kind":
            raise MissingToolError("kind not found: install it")
        return [f"/fake/{name}"]

    runner = Runner(resolve=resolve, execute=lambda argv, how: ran.append(argv) or Result(0))
    runner.run("docker", "ps")
    runner.run("docker", "images")
    assert resolved == ["docker"] and len(ran) == 2
    with pytest.raises(MissingToolError):
        runner.preflight("docker", "kind")
    assert len(ran) == 2


def test_a_vanished_binary_is_a_missing_tool() -> None:
    runner = Runner(resolve=lambda name: ["/nonexistent/tool"])
    with pytest.raises(MissingToolError, match="is gone"):
        runner.run("tool")
