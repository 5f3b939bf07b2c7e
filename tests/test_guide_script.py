"""The portable skill: every lesson's guide cells (tagged `guide`), pasted into a plain Python file with
only `openai` (and `pydantic`, which `pip install openai` brings) imported and the values set, run
unchanged against the real embedded server."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbformat
import pytest
from helpers import guide_cells
from processes import environment_without, run
from project import ROOT

from akash_nb._engine import embedded
from akash_nb._tools.notebooks import lessons

LESSONS = lessons(ROOT / "notebooks")

# What a learner writes above the pasted cells: the values, from the environment. akash_nb is made
# unimportable, so a cell that needed it would fail here.
PREAMBLE = """\
import os
import sys

sys.modules["akash_nb"] = None  # a plain Python file: no akash_nb

api_key = os.environ["API_KEY"]
base_url = os.environ["BASE_URL"]
model = os.environ["MODEL"]
"""


def guide_script(path: Path) -> str:
    cells = [c.source for c in guide_cells(nbformat.read(path, as_version=4))]
    return PREAMBLE + "\n\n".join(cells) + "\n"


def imported(script: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(script)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add((node.module or "").split(".")[0])
    return found


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_the_guide_cells_import_only_openai(path):
    script = guide_script(path)
    assert "client = openai.OpenAI(" in script, f"{path.name} has no guide client block"
    assert "akash_nb" not in script.replace('sys.modules["akash_nb"]', "").replace("no akash_nb", "")
    # pydantic is openai's own dependency (lesson 06 validates structured output with it); python-dotenv is
    # how a learner's own script reads .env (lesson 00), as the anchors teach.
    others = imported(script) - {"openai", "pydantic", "dotenv"} - set(sys.stdlib_module_names)
    assert not others, f"{path.name}'s guide cells import {others}"


@pytest.mark.live
@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_the_guide_cells_run_as_a_plain_script_on_the_embedded_server(path, local_env, tmp_path):
    server = embedded.ensure_server()
    script = tmp_path / "_guide.py"
    script.write_text(guide_script(path))
    env = environment_without("AKASH", "OPENAI")
    env |= {"API_KEY": server.key.reveal(), "BASE_URL": server.base_url, "MODEL": server.model}
    done = run([sys.executable, "-I", str(script)], env=env, cwd=tmp_path, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip(), f"{path.name}'s guide cells printed nothing"
    assert server.key.reveal() not in done.stdout + done.stderr
