"""The regression gate fails when it should: nbval, run for real on copies of a lesson under replay."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "01-basic-completion.ipynb"
GUIDE_PROMPT = "Once upon a time, in a land far, far away"


def nbval(notebook: Path, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("AKASH")}
    full |= {"AKASH_NB_PROVIDER": "replay", "AKASH_NB_RECORDINGS": str(ROOT / "tests" / "recordings"), **env}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
         "--nbval-sanitize-with", str(ROOT / "tests" / "sanitize.cfg"), str(notebook)],
        capture_output=True, text=True, env=full, cwd=notebook.parent, timeout=300, stdin=subprocess.DEVNULL,
    )
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

    done, _ = nbval(copy_with(tmp_path, edit))
    assert done.returncode != 0
    assert "No recording for POST /v1/chat/completions" in done.stdout
    assert '"In a galaxy far, far away"' in done.stdout and "make record" in done.stdout


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


@pytest.mark.parametrize("lesson", sorted((ROOT / "notebooks").glob("0*.ipynb")), ids=lambda p: p.stem)
def test_no_lesson_reaches_the_network_under_replay(lesson):
    """Every request under replay is answered from recordings: the committed run used none other."""
    text = lesson.read_text()
    for host in ("api.akashml.com", "chatapi.akash.network"):
        assert f"https://{host}" not in "".join(
            o.get("text", "") for c in nbformat.reads(text, as_version=4).cells if c.cell_type == "code"
            for o in c.outputs if o.output_type == "stream"), f"{lesson.name} printed a remote URL"
