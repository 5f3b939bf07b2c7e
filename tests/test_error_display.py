"""akash_nb._error_display in plain Python: an uncaught error of ours is its one sentence on stderr (the
traceback only with AKASH_NB_TRACEBACK=1), a learner's own exception keeps Python's traceback, and the hook
is installed once. The notebook side (IPython's handler) runs in a real kernel in tests/test_render.py."""

from __future__ import annotations

import os
import subprocess
import sys

from project import ROOT


def run_script(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


RAISE = (
    "from akash_nb import _error_display as error_display\n"
    "from akash_nb._core.exceptions import ConfigError\n"
    "error_display.install_error_display()\nerror_display.install_error_display()\n"
    "raise ConfigError('No key was found; set AKASHML_API_KEY.')\n"
)


def test_an_uncaught_error_of_ours_is_one_sentence_on_stderr():
    done = run_script(RAISE)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "ConfigError: No key was found; set AKASHML_API_KEY. (full traceback: AKASH_NB_TRACEBACK=1)"
    ]


def test_the_full_traceback_when_asked_and_a_learners_own_error_keeps_it():
    assert "Traceback (most recent call last)" in run_script(RAISE, AKASH_NB_TRACEBACK="1").stderr
    own = run_script(
        "from akash_nb import _error_display as error_display\nerror_display.install_error_display()\n1 / 0\n"
    )
    assert "Traceback (most recent call last)" in own.stderr and "ZeroDivisionError" in own.stderr
