"""Where devstack keeps what it builds: outside the repository, so that a fresh clone (CI's clean
clone on a warm machine, a second worktree) reuses it, and keyed by version, so that a pin that
moves builds anew instead of reusing the old binary."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$VAIA_CACHE_DIR, else $XDG_CACHE_HOME/vaia-devstack, else ~/.cache/vaia-devstack."""
    if os.environ.get("VAIA_CACHE_DIR"):
        return Path(os.environ["VAIA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vaia-devstack"


def binaries_dir() -> Path:
    """One folder per program and version: `<cache>/bin/kubernetes-v1.32.2/kubelet`."""
    return cache_root() / "bin"
