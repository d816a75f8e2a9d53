"""All task output: one rich console, tables built one way, errors on stderr."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
COLORS = {"PASS": "green", "passed": "green", "FAIL": "red", "FAILED": "red", "SKIPPED": "yellow"}


def table(
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    right: Sequence[str] = (),
) -> Table:
    """A table with `title`; the columns named in `right` are right-aligned (figures)."""
    shown = Table(title=title, title_justify="left")
    for column in columns:
        shown.add_column(column, justify="right" if column in right else "left")
    for row in rows:
        shown.add_row(*row)
    return shown


def status(word: str) -> str:
    """A PASS/FAIL-like word in its color."""
    color = COLORS.get(word)
    return f"[{color}]{word}[/]" if color else word


def echo_command(line: str) -> None:
    console.print(line, soft_wrap=True, markup=False, style="dim")


def show_detail(detail: str) -> None:
    err_console.print(detail, markup=False, style="dim", soft_wrap=True)
