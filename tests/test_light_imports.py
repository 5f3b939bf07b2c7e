"""What the command line loads: `akash-nb stop` and `akash-nb serve` run without the OpenAI SDK, httpx2 or
Jupyter (docs/architecture.md promises it: a teacher's `stop` is instant even where the SDK is slow to
import), and so does importing `akash_nb` or `akash_nb.cli` alone."""

from __future__ import annotations

import os
import sys

import pytest
from processes import run
from project import ROOT

HEAVY = ("openai", "httpx2", "httpx", "IPython", "ipywidgets", "jupyterlab", "nbformat")

PROBE = """\
import sys
{body}
print("LOADED", *sorted(m for m in {heavy!r} if m in sys.modules))
"""


def loaded(body: str, state_dir) -> tuple[list[str], str]:
    done = run(
        [sys.executable, "-c", PROBE.format(body=body, heavy=HEAVY)],
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "AKASH_NB_STATE_DIR": str(state_dir)},
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("LOADED")), None)
    assert line is not None, done.stdout + done.stderr
    return line.split()[1:], done.stdout + done.stderr


@pytest.mark.parametrize(
    "body",
    [
        "import akash_nb",
        "import akash_nb.cli",
        "from akash_nb import cli; cli.main(['stop'])",
        "from akash_nb import cli; cli.main(['stop', '--all'])",
        # conftest's stand-in llama-server refuses to serve: the path up to starting it is what is measured
        "from akash_nb import cli; cli.main(['serve'])",
        "from akash_nb import cli; cli.build_parser()",
    ],
)
def test_the_command_line_paths_leave_the_sdk_and_jupyter_unloaded(body, tmp_path):
    heavy, output = loaded(body, tmp_path)
    assert heavy == [], f"{body!r} loaded {heavy}:\n{output}"


def test_the_probe_sees_a_heavy_import(tmp_path):
    heavy, _ = loaded("import akash_nb; akash_nb.client", tmp_path)
    assert "openai" in heavy
