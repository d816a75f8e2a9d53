"""A copy of the checkout that a task or a test may change without touching the user's tree."""

from __future__ import annotations

import shutil
from pathlib import Path

from devstack.core.runner import Runner


def copy_checkout(root: Path, target: Path, runner: Runner | None = None) -> Path:
    """The working tree's files that git knows or would add (tracked, and new ones not ignored;
    no .venv, no reports), copied with their times and modes."""
    listed = (
        (runner or Runner())
        .run("git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        .stdout
    )
    for name in filter(None, listed.split("\0")):
        source = root / name
        if source.is_file():
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    return target
