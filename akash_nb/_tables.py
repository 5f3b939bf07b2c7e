"""Tables and bar charts for lesson outputs, in plain Python: rows of dicts in, an HTML table (and its text
twin for plain Python and nbval) out.

The lessons used pandas and matplotlib for three tables and one chart. Neither has a wheel for Pyodide on
PyPI, so the browser site could not run them; and a learner does not need a data-frame library to look at
ten answers. Cells here often hold what a server sent (answers, model ids), which is untrusted text: each
cell is masked (a configured key never shows), its control characters are made visible instead of acted on,
its length is bounded, and the HTML is escaped.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._core import masking
from ._core.exceptions import INPUT, ParameterError, table_error

CELL_LIMIT = 2000  # characters of one cell; the rest is counted, not shown
ROW_LIMIT = 200  # rows of one table; the rest is counted, not shown
BAR_WIDTH = 30  # characters of the longest bar in a text chart
TEXT_WIDTH = 60  # a text table's columns are padded to at most this many characters


def _visible(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def cell_text(value: object, limit: int = CELL_LIMIT) -> str:
    """One cell as shown: masked, at most `limit` characters plus a count, and every character that is not
    printable made visible as an escape (controls, terminal escapes, bidirectional overrides, zero-width and
    unassigned characters, line separators). Spaces of any width, tab and newline stay: an answer's own line
    breaks are part of it (the HTML view keeps them; the text view shows them as ⏎)."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    text = masking.mask(text)
    more = len(text) - limit
    if more > 0:
        text = text[:limit]
    text = "".join(
        c if c.isprintable() or c in "\n\t" or unicodedata.category(c) == "Zs" else _visible(c) for c in text
    )
    return f"{text}… ({more} more characters)" if more > 0 else text


class Table:
    """Rows shown as a table: `_repr_html_` in a notebook, `repr` in plain Python (the same text nbval sees).

    `rows` are dicts (their keys are the columns, in first-seen order) or sequences with `columns` given;
    `index` names the column shown first, in bold, as a row label. `rows` and `columns` stay available."""

    def __init__(
        self,
        rows: Iterable[Mapping[str, Any] | Sequence[Any]],
        columns: Sequence[str] | None = None,
        index: str | None = None,
    ) -> None:
        listed = list(rows)
        names: list[str] = [str(c) for c in columns] if columns is not None else []
        as_dicts: list[dict[str, Any]] = []
        for row in listed:
            if isinstance(row, Mapping):
                for key in row:
                    if str(key) not in names:
                        names.append(str(key))
                as_dicts.append({str(k): v for k, v in row.items()})
            else:
                values = list(row)
                if columns is None or len(values) != len(names):
                    raise table_error(INPUT, "table-row-needs-columns", ParameterError)
                as_dicts.append(dict(zip(names, values, strict=True)))
        if index is not None and index not in names:
            raise table_error(
                INPUT,
                "table-index-not-a-column",
                ParameterError,
                index=repr(cell_text(index, 80)),
                columns=cell_text(", ".join(names), 300),
            )
        if index is not None:
            names.remove(index)
            names.insert(0, index)
        self.columns = names
        self.rows = as_dicts
        self.index = index

    def column(self, name: str) -> list[Any]:
        """The values of one column, in row order (None where a row has no such key)."""
        return [row.get(name) for row in self.rows]

    def without(self, *names: str) -> Table:
        """The same rows with some columns left out (the values stay in `rows` of this table)."""
        kept = [c for c in self.columns if c not in names]
        return Table(({c: row.get(c) for c in kept} for row in self.rows), columns=kept, index=self.index)

    def _shown_rows(self) -> tuple[list[dict[str, Any]], int]:
        return self.rows[:ROW_LIMIT], max(0, len(self.rows) - ROW_LIMIT)

    def _repr_html_(self) -> str:
        shown, more = self._shown_rows()
        head = "".join(f'<th style="text-align:left">{html.escape(cell_text(c))}</th>' for c in self.columns)
        body = []
        for row in shown:
            cells = []
            for c in self.columns:
                tag = "th" if c == self.index else "td"
                text = html.escape(cell_text(row.get(c, "")))
                cells.append(
                    f'<{tag} style="text-align:left;white-space:pre-wrap;vertical-align:top">{text}</{tag}>'
                )
            body.append(f"<tr>{''.join(cells)}</tr>")
        if more:
            body.append(f'<tr><td colspan="{len(self.columns)}">… and {more} more rows</td></tr>')
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    def __repr__(self) -> str:
        shown, more = self._shown_rows()
        grid = [[cell_text(c) for c in self.columns]]
        grid += [[cell_text(row.get(c, "")).replace("\n", "⏎") for c in self.columns] for row in shown]
        # Columns are padded to their widest cell, up to TEXT_WIDTH; a longer cell is shown whole (it only
        # pushes the cells after it to the right), since the text view is all plain Python and nbval see.
        widths = [min(TEXT_WIDTH, max(len(line[i]) for line in grid)) for i in range(len(self.columns))]
        lines = [
            "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
            for line in grid
        ]
        if more:
            lines.append(f"… and {more} more rows")
        return "\n".join(lines)

    def __len__(self) -> int:
        return len(self.rows)


def table(
    rows: Iterable[Mapping[str, Any] | Sequence[Any]],
    columns: Sequence[str] | None = None,
    index: str | None = None,
) -> Table:
    """Rows (dicts, or sequences with `columns`) as a table a notebook shows; see `Table`."""
    return Table(rows, columns=columns, index=index)


class Bars:
    """A horizontal bar chart of labelled counts: HTML bars in a notebook, text bars in plain Python."""

    def __init__(self, counts: Mapping[Any, float], title: str, top: float | None = None) -> None:
        self.counts = dict(counts)
        self.title = title
        self.top = top if top is not None else max([0.0, *map(float, self.counts.values())])

    def _fraction(self, value: float) -> float:
        return 0.0 if self.top <= 0 else max(0.0, min(1.0, float(value) / self.top))

    def _repr_html_(self) -> str:
        rows = "".join(
            f'<tr><th style="text-align:right">{html.escape(cell_text(label))}</th>'
            f'<td style="width:20em"><div style="background:#4c78a8;height:1em;'
            f'width:{100 * self._fraction(value):.1f}%"></div></td>'
            f"<td>{html.escape(cell_text(value))}</td></tr>"
            for label, value in self.counts.items()
        )
        return f"<table><caption>{html.escape(cell_text(self.title))}</caption>{rows}</table>"

    def __repr__(self) -> str:
        labels = [cell_text(label) for label in self.counts]
        width = max(map(len, labels), default=0)
        lines = [cell_text(self.title)]
        for label, value in zip(labels, self.counts.values(), strict=True):
            bar = "█" * round(BAR_WIDTH * self._fraction(value))
            lines.append(f"{label.rjust(width)} | {bar} {cell_text(value)}")
        return "\n".join(lines)


def bars(counts: Mapping[Any, float], title: str, top: float | None = None) -> Bars:
    """Counts by label as bars (`top` is the full-width value; the largest count when not given)."""
    return Bars(counts, title, top)
