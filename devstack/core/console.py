"""One rich console for all task output."""

from __future__ import annotations

from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}")
