"""`make notebooks` (notebooks.refresh) and `make run` (notebooks.run_all): nothing is committed that says a
recording is missing or that shows an error, and a run does not alarm the learner with kernel warnings."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nbformat
from processes import environment_without, run
from project import RECORDINGS, ROOT

from akash_nb import cli
from akash_nb._tools import notebooks

LESSON = ROOT / "notebooks" / "01-basic-completion.ipynb"
PANEL_PROMPT = 'akash_nb.panel(client, "Once upon a time, in a land far, far away"'


def test_refresh_refuses_a_panel_that_says_a_recording_is_missing_and_names_the_cell(
    tmp_path, monkeypatch, capsys
):
    """The panel shows a missing recording as a sentence instead of raising: that sentence must never
    become a committed expected output."""
    monkeypatch.setenv("AKASH_NB_RECORDINGS", str(RECORDINGS))
    nb = nbformat.read(LESSON, as_version=4)
    (panel,) = [c for c in nb.cells if c.cell_type == "code" and PANEL_PROMPT in c.source]
    panel.source = panel.source.replace("Once upon a time", "Nobody recorded this: once upon a time")
    path = tmp_path / LESSON.name
    nbformat.write(nb, path)
    before = path.read_text()
    assert cli.main(["refresh", str(path)]) == 1
    assert path.read_text() == before, "nothing is written"
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("FAIL")]
    run = next(i for i, c in enumerate(nb.cells) if c.source == "panel.run()")
    assert f"{notebooks.cell_name(nb, run)} printed" in line and "make record" in line
    assert f"cell {run + 1} (counting markdown; first line: 'panel.run()')" in line, "as JupyterLab counts"


def test_an_error_output_is_one_sentence_naming_its_cell():
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# A demo"),  # counted: a teacher counts every cell down the page
            nbformat.v4.new_code_cell("x = 1", outputs=[]),
            nbformat.v4.new_code_cell(
                "boom()",
                outputs=[
                    nbformat.v4.new_output(
                        "error", ename="NameError", evalue="name 'boom' is not defined", traceback=[]
                    )
                ],
            ),
        ]
    )
    sentence = notebooks.problem(nb, "99-demo.ipynb")
    assert sentence == (
        "99-demo.ipynb, cell 3 (counting markdown; first line: 'boom()') raised NameError: "
        "name 'boom' is not defined; fix it, then run `make notebooks`."
    )
    assert notebooks.problem(nbformat.v4.new_notebook(cells=nb.cells[:2]), "ok.ipynb") is None


def test_make_run_does_not_print_the_kernels_tcp_warning(tmp_path):
    lesson = tmp_path / "lessons" / "00-hello.ipynb"
    lesson.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('hello')")]), lesson)
    command = [sys.executable, "-m", "akash_nb.cli", "run", str(lesson), "--out", str(tmp_path / "out")]
    done = run(command, env=environment_without(), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok   00-hello.ipynb" in done.stdout
    assert "without encryption" not in done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    shutil.rmtree(tmp_path / "out")


def test_make_run_names_the_cell_where_run_all_stopped_as_every_message_does(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# A demo"),
            nbformat.v4.new_code_cell("boom()"),
            nbformat.v4.new_code_cell("print('never run')"),
        ]
    )
    path = tmp_path / "99-demo.ipynb"
    nbformat.write(nb, path)
    ran, error = notebooks.execute(path)
    assert error == (
        "cell 2 (counting markdown; first line: 'boom()') raised NameError: name 'boom' is not defined"
    )
    assert ran.cells[2].outputs == [], "Run All stops at the cell that raised"


def test_make_notebooks_leaves_a_lesson_whose_only_change_is_a_timing_byte_identical(tmp_path, capsys):
    """`make record` re-runs every lesson it is given, then `make notebooks`: a lesson nobody changed must
    come out byte-identical (no "0.41 s" -> "0.39 s" churn for a reviewer to read); a real change is
    written."""

    def lesson(text: str) -> Path:
        source = f'import time\nprint("{text}")\nprint(f"took {{time.time() % 1:.4f}} s")'
        path = tmp_path / "99-demo.ipynb"
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)]), path)
        return path

    path = lesson("same")
    assert notebooks.refresh([path]) == []
    before = path.read_bytes()
    assert b"took 0." in before
    assert notebooks.refresh([path]) == []
    assert path.read_bytes() == before, "only the timing differed: the file is untouched"
    assert "99-demo.ipynb" in capsys.readouterr().out.splitlines()[-1]
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace('"same"', '"changed"')
    nbformat.write(nb, path)
    assert notebooks.refresh([path]) == []
    assert b"changed\\n" in path.read_bytes(), "a real change is written"
