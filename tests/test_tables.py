"""akash_nb.table and akash_nb.bars: the lessons' tables and chart, which show what a server sent."""

from __future__ import annotations

import html.parser
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

import akash_nb
from akash_nb import _tables as tables
from akash_nb._core import masking


class _Cells(html.parser.HTMLParser):
    """The text of every cell and the tags an HTML table holds, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.cells: list[str] = []
        self._open = False

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.append(tag)
        if tag in ("td", "th"):
            self._open, self.cells = True, [*self.cells, ""]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._open = False

    def handle_data(self, data: str) -> None:
        if self._open:
            self.cells[-1] += data


def parsed(markup: str) -> _Cells:
    cells = _Cells()
    cells.feed(markup)
    return cells


def test_rows_of_dicts_keep_their_columns_in_first_seen_order_with_the_index_first():
    shown = akash_nb.table([{"answer": "hi", "run": 1}, {"run": 2, "model": "m"}], index="run")
    assert shown.columns == ["run", "answer", "model"]
    assert repr(shown).splitlines() == ["run  answer  model", "1    hi", "2            m"]
    assert parsed(shown._repr_html_()).cells == ["run", "answer", "model", "1", "hi", "", "2", "", "m"]


def test_a_server_s_markup_is_text_in_the_table_not_markup():
    answer = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    markup = akash_nb.table([{"answer": answer}])._repr_html_()
    cells = parsed(markup)
    assert "script" not in cells.tags and "img" not in cells.tags
    assert cells.cells[-1] == answer


def test_terminal_escapes_and_bidi_overrides_are_shown_not_obeyed():
    shown = akash_nb.table([{"model": "evil\x1b[2J\x1b[31m\u202eid\x00"}])
    text = repr(shown)
    assert "\x1b" not in text and "\u202e" not in text and "\x00" not in text
    assert "evil\\x1b[2J\\x1b[31m\\u202eid\\x00" in text
    assert "\x1b" not in shown._repr_html_()


def test_a_newline_in_a_cell_cannot_forge_a_row_of_the_text_table():
    shown = akash_nb.table([{"model": "a\nforged  row"}, {"model": "b"}])
    assert repr(shown).splitlines() == ["model", "a⏎forged  row", "b"]


def test_a_huge_answer_is_bounded_and_its_length_counted():
    shown = akash_nb.table([{"answer": "x" * 50_000}])
    cell = parsed(shown._repr_html_()).cells[-1]
    assert len(cell) < tables.CELL_LIMIT + 50
    assert cell.endswith(f"({50_000 - tables.CELL_LIMIT} more characters)")
    assert repr(shown).splitlines()[-1] == cell  # the text view shows the same bounded cell


def test_many_rows_show_a_bounded_number_and_say_how_many_more():
    shown = akash_nb.table({"run": n} for n in range(tables.ROW_LIMIT + 7))
    assert repr(shown).splitlines()[-1] == "… and 7 more rows"
    assert "… and 7 more rows" in shown._repr_html_()
    assert len(shown) == tables.ROW_LIMIT + 7  # nothing is lost: every row stays in .rows


def test_a_configured_key_echoed_by_a_server_is_masked_in_both_views():
    key = "akml-" + "tablesecret0123456789"  # split: no key-shaped string in a tracked file
    masking.remember(key)
    shown = akash_nb.table([{"error": f"bad key {key}"}])
    assert key not in repr(shown) and key not in shown._repr_html_()


def test_sequences_need_their_column_names_and_a_wrong_index_names_the_columns():
    with pytest.raises(akash_nb.ParameterError, match=r"needs columns=\[\.\.\.\] with one name per value"):
        akash_nb.table([("a", 1)])
    with pytest.raises(akash_nb.ParameterError, match=r"index='nope' is not one of the columns \(a, b\)"):
        akash_nb.table([{"a": 1, "b": 2}], index="nope")


def test_without_leaves_columns_out_of_the_view_and_column_reads_one():
    shown = akash_nb.table([{"version": "v1", "summary": "long", "words": 3}], index="version")
    assert shown.without("summary").columns == ["version", "words"]
    assert shown.column("summary") == ["long"]


def test_bars_are_scaled_to_top_and_bounded_by_it():
    chart = akash_nb.bars({0.0: 1, 0.7: 10, 2.0: 25}, title="Distinct answers", top=10)
    lines = repr(chart).splitlines()
    assert lines[0] == "Distinct answers"
    assert lines[1] == f"0.0 | {'█' * 3} 1"
    assert lines[2] == f"0.7 | {'█' * tables.BAR_WIDTH} 10"
    assert lines[3] == f"2.0 | {'█' * tables.BAR_WIDTH} 25"  # past top: full width, the number says more
    assert "width:10.0%" in chart._repr_html_() and "width:100.0%" in chart._repr_html_()


@given(st.lists(st.dictionaries(st.text(max_size=20), st.text(max_size=300), max_size=4), max_size=6))
def test_any_text_gives_a_table_whose_cells_parse_back_to_the_shown_text(rows):
    shown = akash_nb.table(rows)
    cells = parsed(shown._repr_html_())
    assert set(cells.tags) <= {"table", "thead", "tbody", "tr", "th", "td"}
    expected = [tables.cell_text(c) for c in shown.columns]
    for row in shown.rows:
        expected += [tables.cell_text(row.get(c, "")) for c in shown.columns]
    assert cells.cells == expected
    shown_text = repr(shown).replace("\n", "")
    assert all(c.isprintable() or c == "\t" or unicodedata.category(c) == "Zs" for c in shown_text)
