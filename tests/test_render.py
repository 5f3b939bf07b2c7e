"""What a learner sees in a real kernel: errors as one line, never a prompt that cannot be answered."""

from __future__ import annotations

import os

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def run_cell(source: str, **env: str) -> nbformat.NotebookNode:
    """Execute one cell in a fresh kernel (a front end that cannot answer input, like nbval)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    saved = dict(os.environ)
    os.environ.update(env)
    os.environ.pop("CI", None)  # the prompt must be refused by the front end itself, not by CI
    try:
        with pytest.raises(CellExecutionError):
            NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return nb.cells[0]


def test_a_missing_key_in_the_first_cell_is_one_line_not_a_traceback_or_a_hang():
    cell = run_cell("import akash_nb\nclient = akash_nb.client()", AKASH_NB_PROVIDER="akashml")
    (error,) = [o for o in cell.outputs if o.output_type == "error"]
    assert error.ename == "ConfigError"
    assert len(error.traceback) == 1, "one line, not a 40-line traceback"
    assert "set AKASHML_API_KEY in the environment or in a .env file" in error.traceback[0]


def test_an_sdk_error_names_the_client_it_came_from():
    cell = run_cell(
        "import akash_nb\n"
        "client = akash_nb.client(provider='openai-compatible', base_url='http://127.0.0.1:9/v1', "
        "max_retries=0)\n"
        "client.models.list()"
    )
    (error,) = [o for o in cell.outputs if o.output_type == "error"]
    assert len(error.traceback) == 1
    assert "Nothing is listening at http://127.0.0.1:9/v1" in error.traceback[0]
