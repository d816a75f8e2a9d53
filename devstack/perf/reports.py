"""Where benchmark results go: a folder of the run's own under `reports/` (git-ignored), one
Markdown file per section, and a plot where a curve says more than a table. `docs/benchmarks.md`
is rewritten only when asked (`invoke bench --update-docs`), so that a benchmark never leaves the
checkout dirty (a dirty tree would tag the next `invoke build` `sha-...-dirty`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class BenchReports:
    folder: Path  # reports/bench-<time>: this run's files
    docs: Path | None = None  # docs/benchmarks.md, with --update-docs only
    written: list[Path] = field(default_factory=list)

    @classmethod
    def for_run(cls, root: Path, report_dir: str = "", update_docs: bool = False) -> BenchReports:
        folder = (
            Path(report_dir)
            if report_dir
            else root / "reports" / time.strftime("bench-%Y%m%d-%H%M%S")
        )
        return cls(folder, root / "docs" / "benchmarks.md" if update_docs else None)

    def section(self, name: str, lines: list[str]) -> Path:
        """`reports/.../<name>.md`; and the `--<name>` block of the docs when they are updated."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{name}.md"
        path.write_text("\n".join(lines).rstrip("\n") + "\n")
        self.written.append(path)
        if self.docs is not None:
            self.written.append(write_block(self.docs, f"--{name}", lines))
        return path

    def plot_path(self, name: str) -> Path:
        """Where the section's plot goes (always under reports/, never in the docs)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{name}.png"
        self.written.append(path)
        return path


def markdown(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table."""
    return [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
        *["| " + " | ".join(row) + " |" for row in rows],
    ]


def write_block(path: Path, section: str, lines: list[str]) -> Path:
    """Rewrite the block between `<!-- invoke bench SECTION: start/end -->`; the notes around
    it are kept. A section not yet in the file is appended."""
    start, end = f"<!-- invoke bench {section}: start -->", f"<!-- invoke bench {section}: end -->"
    block = "\n".join([start, *lines, end])
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start not in text:
        text = text.rstrip("\n") + "\n\n" + start + "\n" + end + "\n"
    before, _, rest = text.partition(start)
    _, _, after = rest.partition(end)
    path.write_text(before + block + after)
    return path
