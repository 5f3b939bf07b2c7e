"""docs/errors.md from every sentence table: `akash-nb errors-table` rewrites the page's case table from
errors.STATUS and errors.NO_STATUS (failures of a request) and the tables of _core/exceptions.py (bad input,
refused requests, configuration, the embedded engine), so that the page lists every case the package says."""

from __future__ import annotations

from pathlib import Path

from .._core.exceptions import SENTENCE_TABLES, _Blank
from .._core.failures import NO_STATUS, STATUS


def table_rows() -> list[tuple[str, str, str, str]]:
    """(case, what the user sees, retried?, anything lost?) for every row, as docs/errors.md shows them."""
    rows = []
    for failure in (*STATUS.values(), *NO_STATUS.values(), *(f for t in SENTENCE_TABLES for f in t.values())):
        shown = failure.sentence.format_map(
            _Blank(
                provider="[provider]",
                detail=f"[{failure.detail}]",
                url="[URL]",
                wait=", Retry-After: [n] s",
                status="[status]",
            )
        )
        rows.append((failure.case, shown, "yes, by the SDK" if failure.retry else "no", failure.lost))
    return rows


def markdown_table() -> str:
    """The case table in Markdown (docs/errors.md embeds exactly this; a test keeps them equal)."""
    lines = ["| Case | What the user sees | Retried? | Anything lost? |", "|---|---|---|---|"]
    for row in table_rows():
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines)


def write_docs(path: str = "docs/errors.md") -> bool:
    """Put `markdown_table()` into `path` in place of the table there; True if the file changed.

    `akash-nb errors-table` runs it (tests/test_errors.py checks the committed file)."""
    target = Path(path)
    text = target.read_text(encoding="utf-8")
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| Case | What the user sees"))
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    new = "\n".join(lines[:start] + markdown_table().splitlines() + lines[end:]) + "\n"
    if new == text:
        return False
    target.write_text(new, encoding="utf-8")
    return True
