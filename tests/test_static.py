"""Static checks: lint, format, types, and that the docs and the code agree."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agent.config import Settings

pytestmark = pytest.mark.static
ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_lint_is_clean() -> None:
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_agent_devstack_and_tasks_is_clean() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_api_doc_documents_every_setting_with_its_default() -> None:
    reference = (ROOT / "docs" / "api.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", reference, re.M))
    fields = {name.upper(): field for name, field in Settings.model_fields.items()}
    assert set(fields) <= set(rows), f"undocumented: {sorted(set(fields) - set(rows))}"
    defaults = Settings(_env_file=None)
    for name in fields:
        value = getattr(defaults, name.lower())
        shown = rows[name].strip().strip("`")
        if value is None or value == []:
            assert shown == "unset", name
        elif isinstance(value, bool):
            assert shown == str(value).lower(), name
        elif isinstance(value, float) and value.is_integer():
            assert shown == str(int(value)), name
        else:
            assert shown == str(value), name


def test_env_example_names_only_real_settings() -> None:
    names = re.findall(r"^#?\s*([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M)
    assert names and set(names) <= {n.upper() for n in Settings.model_fields}


def test_chroma_extras_are_mutually_exclusive_and_pinned_alike() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert not any(dep.startswith("chromadb") for dep in project["dependencies"])
    assert extras["client"] == ["chromadb-client==" + extras["embedded"][0].split("==")[1]]
    assert "vaia-agent[embedded]" in extras["dev"]
    assert not any("chromadb-client" in dep for dep in extras["dev"])


def test_the_installed_chromadb_is_the_full_package() -> None:
    import chromadb

    assert chromadb.is_client is False, "chromadb-client is installed next to chromadb; see README"


def test_ci_runs_the_readme_setup_and_test_command_exactly() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    [command] = [line for line in readme.splitlines() if line.endswith("&& invoke test")]
    assert "invoke setup && invoke test" in command and 'pip install -e ".[dev]"' in command
    assert script.strip().splitlines()[-1] == command


def test_runtime_lock_covers_every_runtime_dependency() -> None:
    """requirements/runtime.lock (what the image installs) must satisfy pyproject's runtime deps."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = (ROOT / "requirements" / "runtime.lock").read_text()
    pinned = {
        m.group(1).lower().replace("_", "-"): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", lock, re.M)
    }
    assert all(
        line.strip().startswith(("--hash", "#"))
        or "==" in line
        or not line.strip()
        or line.strip() == "\\"
        for line in lock.splitlines()
    ), "every requirement is pinned"
    for spec in [*project["dependencies"], *project["optional-dependencies"]["client"]]:
        requirement = Requirement(spec)
        name = requirement.name.lower()
        assert name in pinned, f"{name} is missing from the lock: run invoke lock"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{name}=={pinned[name]} violates {spec}"
        )
    assert lock.count("--hash=sha256:") >= len(pinned)


def test_the_readme_is_short_and_every_doc_it_links_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 110, "the README fits on two screens; details go to docs/"
    for target in re.findall(r"\]\(([^)#]+\.md)(?:#[^)]*)?\)", readme):
        assert (ROOT / target).exists(), target
    for doc in ("api.md", "delivery.md", "testing.md", "benchmarks.md", "design.md"):
        assert f"docs/{doc}" in readme, doc


def test_every_markdown_link_between_docs_resolves() -> None:
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", path.read_text()):
            assert (path.parent / target).resolve().exists(), f"{path.name} links {target}"
