"""Gates on the committed lessons: the template, clean metadata, no errors, no secrets, no local paths."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import nbformat
import pytest

from akash_nb.notebooks import lessons, normalize

ROOT = Path(__file__).resolve().parents[1]
LESSONS = lessons(ROOT / "notebooks")
KEY_SHAPE = re.compile(r"\b(sk-[A-Za-z0-9_-]{20,}|akml-[A-Za-z0-9_-]{16,})")
LOCAL_PATH = re.compile(r"(/work/|/root/|/home/|/tmp/|/Users/|[A-Z]:\\\\)")


def test_there_is_a_lesson_per_guide_section():
    names = [p.stem for p in LESSONS]
    assert names == ["00-setup", "01-basic-completion", "02-conversation", "03-code-generation",
                     "04-summarization", "05-parameters"]


@pytest.fixture(params=LESSONS, ids=lambda p: p.stem)
def lesson(request) -> tuple[Path, nbformat.NotebookNode]:
    return request.param, nbformat.read(request.param, as_version=4)


def headings(nb) -> list[str]:
    return [line for cell in nb.cells if cell.cell_type == "markdown"
            for line in cell.source.splitlines() if line.startswith("#")]


def test_follows_the_lesson_template(lesson):
    _, nb = lesson
    found = headings(nb)
    assert found[0].startswith("# "), "a lesson starts with its title"
    for section in ("## Set up", "## Try it", "## Your turn", "## Next"):
        assert section in found, f"missing section {section!r}"
    sources = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    assert "client = akash_nb.client()" in sources
    assert "akash_nb.panel(" in sources, "every lesson has the widget panel"
    assert "akash_nb.exercises.check_" in sources, "every lesson has an exercise with a check"
    if not found[0].startswith("# Set up"):
        assert "client.chat.completions.create(" in sources, "the lesson teaches the real call"


def test_is_committed_normalized(lesson):
    path, nb = lesson
    expected = nbformat.writes(normalize(nbformat.read(path, as_version=4)))
    assert path.read_text() == expected + ("\n" if not expected.endswith("\n") else ""), (
        f"{path.name} has machine-specific metadata: run `make notebooks`")


def test_is_committed_with_outputs_and_no_errors(lesson):
    path, nb = lesson
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code_cells), (
        f"{path.name} has unexecuted cells: run `make notebooks`")
    for cell in code_cells:
        for output in cell.outputs:
            assert output.output_type != "error", f"{path.name}: {output.get('ename')} committed"
            assert not (output.output_type == "stream" and output.name == "stderr"), (
                f"{path.name} commits stderr: {output.text[:200]}")


def test_no_local_paths_and_no_input(lesson):
    path, nb = lesson
    text = path.read_text()
    assert not LOCAL_PATH.search(text), f"{path.name} holds a local path: {LOCAL_PATH.search(text)}"
    assert "input(" not in text


def test_no_key_shaped_string_in_any_tracked_file():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    leaks = []
    for name in files:
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        leaks += [f"{name}: {m.group(0)[:8]}..." for m in KEY_SHAPE.finditer(text)]
    assert leaks == []


def test_recordings_are_small_readable_json():
    folder = ROOT / "tests" / "recordings"
    files = list(folder.glob("*.json"))
    assert files, "no recordings: run `make record`"
    for path in files:
        assert path.stat().st_size < 64_000, f"{path.name} is large; is it recording more than a lesson?"
        data = json.loads(path.read_text())
        assert "authorization" not in json.dumps(data).lower()
