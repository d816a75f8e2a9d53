"""The Kubernetes Secret's env file (k8s/base/secrets.env, git-ignored), written from the
environment. The key goes from $GEMINI_API_KEY to the file (mode 600) without ever being an
argument on a command line or printed; with no key the file is empty and the agent runs offline.

    python -m devstack.secrets [PATH]        (Tilt and `invoke deploy` run this)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "k8s" / "base" / "secrets.env"
SECRET_VARIABLES = ("GEMINI_API_KEY",)


def render(environ: dict[str, str]) -> str:
    lines = []
    for name in SECRET_VARIABLES:
        value = environ.get(name, "").strip()
        if "\n" in value:
            raise ValueError(f"{name} must be a single line")
        if value:
            lines.append(f"{name}={value}")
    return "".join(f"{line}\n" for line in lines)


def write_secrets_env(path: Path = DEFAULT_PATH, environ: dict[str, str] | None = None) -> bool:
    """Write the file if its content would change; True when it did. Always mode 600."""
    content = render(dict(os.environ) if environ is None else environ)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        if handle.read() == content:
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(content)
    return True


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT_PATH
    changed = write_secrets_env(path)
    keys = [name for name in SECRET_VARIABLES if os.environ.get(name, "").strip()]
    print(f"{path}: {'written' if changed else 'unchanged'}; keys set: {', '.join(keys) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
