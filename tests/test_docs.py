"""The guide page regenerated from the lessons (_tools/docs.py, `akash-nb export-docs`): the seed's front
matter keys and section headings in the seed's order, plain `openai` code against AkashML (no akash_nb)
that the lessons ran, with the outputs they printed labelled by who printed them, and nothing from this
machine (ports, keys, paths) in the page or in the lessons' HTML."""

from __future__ import annotations

import ast as pyast
import re
import sys
from pathlib import Path

import mistune
import nbformat
import pytest
import yaml
from helpers import LESSONS, guide_cells
from project import ROOT

from akash_nb import cli
from akash_nb._tools import docs

SEED_KEYS = ["categories", "tags", "weight", "title", "linkTitle"]
SEED_SECTIONS = [
    (2, "Introduction"),
    (2, "Python Examples"),
    (3, "Basic Text Completion"),
    (3, "Conversation with AkashChat"),
    (3, "Generating Code Snippets"),
    (3, "Summarization"),
]
# What the page may import: `pip install openai` gives openai (and pydantic, which it needs); the rest is
# the standard library.
PAGE_IMPORTS = set(sys.stdlib_module_names) | {"openai", "pydantic"}
LEAKS = {
    "a loopback port": re.compile(r"127\.0\.0\.1:\d"),
    "an OpenAI-style key": re.compile(r"sk-[A-Za-z0-9_-]{20,}"),
    "an AkashML key": re.compile(r"akml-[A-Za-z0-9_-]{16,}"),
    "a local path": re.compile(r"/(?:work|tmp|root|home)/"),
}
DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=\s]+")  # an image is not text that can leak


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """`akash-nb export-docs`, once for the module, into a temporary folder."""
    out = tmp_path_factory.mktemp("docs")
    assert cli.main(["export-docs", "--folder", str(ROOT / "notebooks"), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def page(exported) -> str:
    return (exported / docs.PAGE_NAME).read_text()


def split_front_matter(text: str) -> tuple[dict, str]:
    assert text.startswith("---\n"), "the page opens with YAML front matter, as the seed does"
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


def ast(body: str) -> list[dict]:
    return mistune.create_markdown(renderer="ast")(body)


def heading_text(token: dict) -> str:
    return "".join(child.get("raw", "") for child in token["children"])


def blocks(body: str, info: str) -> list[str]:
    return [
        t["raw"].strip() for t in ast(body) if t["type"] == "block_code" and t["attrs"].get("info") == info
    ]


def lesson_sources() -> set[str]:
    return {c.source.strip() for p in LESSONS for c in guide_cells(nbformat.read(p, as_version=4))}


def lesson_outputs() -> str:
    return "\n".join(
        docs.sanitize(docs.printed(c))
        for p in LESSONS
        for c in nbformat.read(p, as_version=4).cells
        if c.cell_type == "code"
    )


# --- the seed's format ------------------------------------------------------------------------------------


def test_the_front_matter_parses_and_has_the_seeds_keys(page):
    front, _ = split_front_matter(page)
    assert list(front) == SEED_KEYS
    assert front["categories"] == ["Guides"]
    assert all(isinstance(tag, str) for tag in front["tags"]) and front["tags"]
    assert isinstance(front["weight"], int)
    assert "AkashML" in front["title"] and "OpenAI-compatible" in front["title"]
    assert "Akash Chat API" != front["title"], "the retired service's name is not the page's title"


def test_every_section_of_the_seed_is_there_in_the_seeds_order(page):
    _, body = split_front_matter(page)
    headings = [(t["attrs"]["level"], heading_text(t)) for t in ast(body) if t["type"] == "heading"]
    assert [h for h in headings if h in SEED_SECTIONS] == SEED_SECTIONS
    assert body.index("## Introduction") > 0, "the seed's opening paragraph comes before the Introduction"


def section_text(body: str, heading: str) -> str:
    """From `heading` to the next heading of level 2 or 3 (outside code blocks: they hold no "\n## ")."""
    start = body.index(heading + "\n") + len(heading)
    ends = [i for i in (body.find("\n## ", start), body.find("\n### ", start)) if i != -1]
    return body[start : min(ends, default=len(body))]


def test_every_example_section_shows_the_guides_call_and_its_answer(page):
    _, body = split_front_matter(page)
    for section in (*docs.SECTIONS, *docs.GOING_FURTHER):
        text = section_text(body, section.heading)
        assert any(docs.GUIDE_CALL in code for code in blocks(text, "python")), section.heading
        lead, answer = text.split(docs.SIMILAR, 1)
        assert blocks(answer, "text"), f"{section.heading}: an answer follows 'similar to'"
        # Which provider and model answered, from the lesson's own banner, just before the answer.
        assert "SmolLM2-135M-Instruct" in lead.splitlines()[-1], section.heading
        assert "replay" in lead.splitlines()[-1], section.heading


def test_every_code_block_is_the_preamble_or_a_guide_cell_that_a_lesson_ran(page):
    _, body = split_front_matter(page)
    infos = {t["attrs"].get("info") for t in ast(body) if t["type"] == "block_code"}
    assert infos == {"python", "text", "sh"}, "the set-up commands, the lessons' code and what it printed"
    sources = lesson_sources() | {docs.PREAMBLE.strip()}
    code = blocks(body, "python")
    assert code[0] == docs.PREAMBLE.strip()
    assert len(code) >= 1 + 2 * len(docs.SECTIONS) + len(docs.GOING_FURTHER)
    for block in code:
        assert block in sources, f"not a lesson's guide cell:\n{block}"


def test_the_page_is_plain_openai_code_against_akashml_with_the_key_from_the_environment(page):
    _, body = split_front_matter(page)
    code = blocks(body, "python") + blocks(body, "sh")
    for block in code:
        assert "akash_nb" not in block, f"the page's readers have no akash_nb:\n{block}"
    imported = {
        name.split(".")[0]
        for block in blocks(body, "python")
        for node in pyast.walk(pyast.parse(block))
        if isinstance(node, (pyast.Import, pyast.ImportFrom))
        for name in ([a.name for a in node.names] if isinstance(node, pyast.Import) else [node.module or ""])
    }
    assert imported <= PAGE_IMPORTS, (
        f"the page says `pip install openai` only; it imports {imported - PAGE_IMPORTS}"
    )
    preamble = code[0]
    assert 'base_url = "https://api.akashml.com/v1"' in preamble
    assert 'api_key = os.environ["AKASHML_API_KEY"]' in preamble
    assert 'model = "' in preamble and "pip install openai" in "\n".join(code)
    for section in (*docs.SECTIONS, *docs.GOING_FURTHER):
        python = blocks(section_text(body, section.heading), "python")
        assert "client = openai.OpenAI(\n    api_key=api_key,\n    base_url=base_url,\n)" in python[0]
        assert python[0].startswith("import openai")


def test_the_introduction_gives_the_steps_to_an_akashml_key(page):
    _, body = split_front_matter(page)
    intro = section_text(body, "## Introduction")
    for step in ("Create an account", "credits", "Settings → API Keys", "AKASHML_API_KEY"):
        assert step in intro


def test_every_output_block_is_what_a_lesson_printed(page):
    _, body = split_front_matter(page)
    printed = lesson_outputs()
    for block in blocks(body, "text"):
        assert block in printed, f"no lesson printed:\n{block}"


def test_the_conversation_shows_both_turns_in_order(page):
    _, body = split_front_matter(page)
    first = body.index('"Who won the FIFA World Cup in 2022?"')
    follow_up = body.index('"Can you tell me more about that?"')
    assert body.index("### Conversation with AkashChat") < first < follow_up < body.index("### Generating")


def test_an_answer_holding_a_code_fence_stays_inside_its_block(page):
    _, body = split_front_matter(page)
    answers = blocks(body, "text")
    assert any(answer.startswith("```python\ndef reverse_string") for answer in answers)


# --- nothing from this machine ----------------------------------------------------------------------------


def test_no_port_key_or_local_path_leaks_into_the_page_or_the_html(exported):
    files = sorted(exported.iterdir())
    assert {f.name for f in files} == {docs.PAGE_NAME} | {f"{p.stem}.html" for p in LESSONS}
    for path in files:
        text = DATA_URI.sub("", path.read_text())
        for what, pattern in LEAKS.items():
            found = pattern.search(text)
            assert found is None, f"{what} in {path.name}: {text[max(0, found.start() - 60) : found.end()]!r}"


def test_ports_are_replaced_not_dropped(exported):
    assert "URL: http://127.0.0.1:PORT/v1" in (exported / "01-basic-completion.html").read_text()


# --- the lessons as HTML ----------------------------------------------------------------------------------


def test_every_lesson_is_rendered_to_html_with_links_to_the_html_copies(exported):
    for lesson in LESSONS:
        html = (exported / f"{lesson.stem}.html").read_text()
        title = nbformat.read(lesson, as_version=4).cells[0].source.splitlines()[0].removeprefix("# ")
        assert html.lstrip().lower().startswith("<!doctype html>")
        assert title in html
        assert not re.search(r'href="\d\d-[\w-]+\.ipynb"', html), f"{lesson.name}: a link to a notebook"
    assert 'href="01-basic-completion.html"' in (exported / "00-setup.html").read_text()


# --- choosing the guide's cells ---------------------------------------------------------------------------


def notebook(*cells) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=list(cells))


md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell


def test_the_guides_calls_are_the_create_cells_under_the_guides_heading():
    nb = notebook(
        md("## Set up"),
        code("client = make()"),
        md("## The guide's call\n\nText."),
        code("response = client.chat.completions.create(model=m, messages=[])"),
        md("Then print it:"),
        code("show(response)"),
        md("## What just happened"),
        code("again = client.chat.completions.create(model=m, messages=[])"),
    )
    assert [c.source for c in docs.guide_cells(nb)] == [nb.cells[3].source]
    assert [c.source for c in docs.setup_cells(nb)] == ["client = make()"]


def test_cells_tagged_guide_win_over_the_heading():
    tagged = code("print('tagged')")
    tagged.metadata["tags"] = ["guide"]
    nb = notebook(md("## The guide's call"), code("client.chat.completions.create(model=m)"), tagged)
    assert docs.guide_cells(nb) == [tagged]


def test_a_lesson_without_a_guides_call_is_a_sentence():
    with pytest.raises(docs.DocsError) as caught:
        docs.guide_cells(notebook(md("## Set up"), code("x = 1")), "99-empty")
    assert caught.value.sentence.startswith("99-empty has no guide's call")
    assert "`guide`" in caught.value.sentence


@pytest.mark.parametrize("text", ["plain", "```python\nx = 1\n```", "````\nquad\n````"])
def test_a_fence_is_longer_than_any_fence_inside_it(text):
    fenced = docs.fence(text, "text")
    tokens = ast(fenced)
    assert len(tokens) == 1 and tokens[0]["type"] == "block_code"
    assert tokens[0]["raw"].strip() == text
