"""The regression gate fails when it should: nbval, run for real on copies of a lesson under replay."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
from nbval_run import nbval_command
from processes import environment_without, run
from project import REPLAY, ROOT

from akash_nb._core.providers import PROVIDERS
from akash_nb._tools import notebooks

LESSON = ROOT / "notebooks" / "01-basic-completion.ipynb"
GUIDE_PROMPT = "Once upon a time, in a land far, far away"


def nbval(notebook: Path, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    full = environment_without() | REPLAY | env
    started = time.monotonic()
    done = run(nbval_command(notebook), env=full, cwd=notebook.parent, timeout=300)
    return done, time.monotonic() - started


def copy_with(tmp_path: Path, edit) -> Path:
    nb = nbformat.read(LESSON, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and GUIDE_PROMPT in c.source)
    edit(cell)
    path = tmp_path / LESSON.name
    nbformat.write(nb, path)
    return path


def test_the_committed_lesson_passes(tmp_path):
    done, _ = nbval(copy_with(tmp_path, lambda cell: None))
    assert done.returncode == 0, done.stdout[-2000:]


def test_a_changed_prompt_without_a_new_recording_fails_with_the_no_recording_sentence(tmp_path):
    def edit(cell):
        cell.source = cell.source.replace(GUIDE_PROMPT, "In a galaxy far, far away")

    path = copy_with(tmp_path, edit)
    done, _ = nbval(path)
    assert done.returncode != 0
    assert "No recording for POST /v1/chat/completions" in done.stdout
    assert '"In a galaxy far, far away"' in done.stdout and "make record" in done.stdout
    # The lesson stops at that cell, as Run All does: one failure, the later cells skipped, no knock-on
    # NameError; and nbval names the cell as every akash_nb message does (counting markdown, first line).
    nb = nbformat.read(path, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "galaxy" in c.source)
    later = sum(1 for c in nb.cells[index + 1 :] if c.cell_type == "code")
    assert "NameError" not in done.stdout
    assert re.search(rf"\b1 failed\b.*\b{later} skipped\b", done.stdout), done.stdout[-800:]
    name = notebooks.cell_name(nb, index)
    (failed,) = [line for line in done.stdout.splitlines() if line.startswith("FAILED ")]
    assert failed.endswith(f"::{name}") or f"::{name} - " in failed, failed
    assert f"{name}: Cell execution caused an exception" in done.stdout, done.stdout[-3000:]
    assert "::Cell " not in done.stdout, "nbval's own 0-based count of code cells is not shown"


def test_a_changed_rendering_fails_the_output_comparison(tmp_path):
    def edit(cell):
        cell.source = cell.source.replace(".content.strip())", ".content.strip().upper())")

    done, _ = nbval(copy_with(tmp_path, edit))
    assert done.returncode != 0
    assert "Cell outputs differ" in done.stdout


def test_a_missing_recordings_folder_fails_fast_with_a_sentence(tmp_path):
    done, seconds = nbval(copy_with(tmp_path, lambda cell: None), AKASH_NB_RECORDINGS=str(tmp_path / "none"))
    assert done.returncode != 0
    assert "make record" in done.stdout and str(tmp_path / "none") in done.stdout
    assert seconds < 60, "a missing folder must never hang the suite"


def output_texts(output) -> list[str]:
    """Everything an output shows: a stream's text, every mime type of a display or result, an error's name,
    value and traceback."""
    if output.output_type == "stream":
        return [output.text]
    if output.output_type == "error":
        return [output.ename, output.evalue, *output.traceback]
    return [value if isinstance(value, str) else json.dumps(value) for value in output.data.values()]


def is_the_provider_table(text: str) -> bool:
    """Lesson 00 shows akash_nb.PROVIDERS, every provider's URL at once: a table, not a request."""
    return all(p.base_url in text for p in PROVIDERS.values() if p.base_url)


@pytest.mark.parametrize("lesson", sorted((ROOT / "notebooks").glob("0*.ipynb")), ids=lambda p: p.stem)
def test_no_lesson_reaches_the_network_under_replay(lesson):
    """Every request under replay is answered from recordings: the committed run used none other. No output
    of any kind names a URL off this machine (only 127.0.0.1), nor either remote provider's host."""
    nb = nbformat.read(lesson, as_version=4)
    texts = [
        text
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        for text in output_texts(output)
    ]
    assert any("http://127.0.0.1:PORT/v1" in text for text in texts), "the search sees the banner's URL"
    for text in texts:
        if is_the_provider_table(text):
            continue
        for host in ("api.akashml.com", "chatapi.akash.network"):
            assert host not in text, f"{lesson.name} shows {host}: {text[:200]!r}"
        hosts = {urlparse(url).hostname for url in re.findall(r"https?://[^\s\"'<>\\]+", text)}
        assert hosts <= {"127.0.0.1"}, f"{lesson.name} shows a URL off this machine: {hosts}"
