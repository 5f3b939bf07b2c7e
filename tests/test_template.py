"""A teacher adds a lesson: `akash-nb new-lesson NAME` writes one from the template, and after `make record`
it passes the same gates as every committed lesson (tests/test_notebooks.py) and nbval under replay."""

from __future__ import annotations

import nbformat
import pytest
from helpers import exercise_problems, template_problems
from nbval_run import nbval_command
from processes import environment_without, run

from akash_nb import cli
from akash_nb._tools import notebooks, template


def test_new_lesson_takes_the_next_number_and_follows_the_template(tmp_path, capsys):
    (tmp_path / "05-parameters.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    assert cli.main(["new-lesson", "embeddings", "--folder", str(tmp_path)]) == 0
    path = tmp_path / "06-embeddings.ipynb"
    assert f"Wrote {path}" in capsys.readouterr().out
    nb = nbformat.read(path, as_version=4)
    assert exercise_problems(nb) == []
    # Only its unfilled texts stand between it and the gates: one sentence each, naming the cell.
    problems = template_problems(nb)
    assert problems and all("still has the template's placeholder [write: " in p for p in problems)
    assert problems[0] == (
        "cell 1 (counting markdown; first line: '# Embeddings') still has the template's placeholder "
        "[write: one sentence, what the learner will be able to do]: write one sentence, what the learner "
        "will be able to do in its place."
    )
    assert template_problems(filled(nb)) == []


def filled(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The lesson as a teacher leaves it: every [write: ...] text written."""
    for cell in nb.cells:
        cell.source = template.PLACEHOLDER.sub("Written by the teacher.", cell.source)
    return nb


@pytest.mark.parametrize("name", ["Embeddings", "two words", "06-x", ""])
def test_a_bad_lesson_name_is_one_sentence(tmp_path, capsys, name):
    assert cli.main(["new-lesson", name, "--folder", str(tmp_path)]) == 2
    assert "lowercase words joined by hyphens" in capsys.readouterr().err


def test_an_existing_lesson_is_not_overwritten(tmp_path, capsys):
    assert cli.main(["new-lesson", "embeddings", "--folder", str(tmp_path)]) == 0
    assert cli.main(["new-lesson", "embeddings", "--folder", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.live
def test_a_new_lesson_goes_green_once_recorded(tmp_path, local_env, monkeypatch):
    folder, recordings = tmp_path / "notebooks", tmp_path / "recordings"
    folder.mkdir()
    assert cli.main(["new-lesson", "octopuses", "--folder", str(folder)]) == 0
    (path,) = notebooks.lessons(folder)
    nbformat.write(filled(nbformat.read(path, as_version=4)), path)
    # make record: record its requests from the embedded model, then make notebooks (replay)
    assert notebooks.record([path], folder=recordings, out=lambda line: None) == 0
    monkeypatch.setenv("AKASH_NB_RECORDINGS", str(recordings))
    assert notebooks.refresh([path]) == []
    nb = nbformat.read(path, as_version=4)
    assert template_problems(nb) == [] and exercise_problems(nb) == []
    assert notebooks.problem(nb, path.name) is None
    assert path.read_text() == nbformat.writes(notebooks.normalize(nbformat.read(path, as_version=4))) + "\n"
    env = environment_without() | {"AKASH_NB_PROVIDER": "replay", "AKASH_NB_RECORDINGS": str(recordings)}
    done = run(nbval_command(path), env=env, cwd=folder, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:]
    solved, error = notebooks.execute(path, env, solutions=True)
    assert error is None
    (solution,) = [c for c in solved.cells if notebooks.SOLUTION_TAG in c.metadata.get("tags", [])]
    assert solution.outputs[-1].data["text/plain"].startswith("✓")
