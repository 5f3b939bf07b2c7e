"""What a learner sees in a real kernel: errors as one line, never a prompt that cannot be answered."""

from __future__ import annotations

import os
import re

import nbformat
import openai
import pytest
from helpers import completion
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from akash_nb import _render as render
from akash_nb import connection_values
from akash_nb._core.connection import connection_for_url
from akash_nb._engine import class_server


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


def test_a_learners_own_json_error_keeps_ipythons_traceback():
    """Only errors raised by openai or akash_nb become one sentence; json.loads in the learner's own cell
    is the learner's error, not a provider's broken answer."""
    cell = run_cell(
        "import json\nfrom akash_nb._error_display import install_error_display\ninstall_error_display()\n"
        "json.loads(\"{'a': 1}\")"
    )
    (error,) = [o for o in cell.outputs if o.output_type == "error"]
    assert error.ename == "JSONDecodeError"
    shown = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error.traceback))  # without IPython's colours
    assert "not valid JSON" not in shown and "the provider" not in shown
    assert len(error.traceback) > 1 and "json.loads(\"{'a': 1}\")" in shown


CLASS_URL = "http://192.168.1.20:8080/v1"


def banner_and_footer(tmp_path, monkeypatch, dotenv: list[str]) -> tuple[str, str]:
    """What a student's banner and footer say with these `.env` lines (no request is sent)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("\n".join(dotenv) + "\n")
    key, base_url = connection_values(show=False)
    client = openai.OpenAI(api_key=key, base_url=base_url)
    conn = connection_for_url(base_url)
    assert conn is not None
    return render.connection_text(conn), render.footer(completion("Hi."), client)


def test_a_joined_class_server_is_named_class_server_in_the_banner_and_footer(tmp_path, monkeypatch):
    banner, footer = banner_and_footer(tmp_path, monkeypatch, class_server.env_lines(CLASS_URL, "k" * 22))
    assert banner.startswith("Provider: class server — the class server your teacher shares"), banner
    assert f"URL: {CLASS_URL}" in banner
    assert "OpenAI-compatible" not in banner and "openai-compatible" not in banner
    assert " via class server · " in footer, footer


def test_another_server_is_not_named_a_class_server(tmp_path, monkeypatch):
    lines = class_server.env_lines(CLASS_URL, "k" * 22)
    moved = [line.replace(CLASS_URL, "http://10.0.0.5:8000/v1", 1) for line in lines[:3]] + lines[3:]
    for dotenv in (lines[:3], moved):  # written by hand, or the URL changed since `akash-nb join`
        banner, footer = banner_and_footer(tmp_path, monkeypatch, dotenv)
        assert banner.startswith("Provider: openai-compatible — your OpenAI-compatible server"), banner
        assert " via openai-compatible · " in footer


# --- the timing line ---------------------------------------------------------------------------------


def test_the_footer_says_a_replayed_answer_was_not_timed():
    from akash_nb import _render as render

    line = render.footer_text("m", "replay", "stop", None, seconds=0.01)
    assert line.endswith("time not measured (replay)")
    assert "0.01" not in line
    streamed = render.footer_text(
        "m", "replay", "stop", None, seconds=0.05, first_token_seconds=0.01, streamed=True
    )
    assert "first token" not in streamed and "total" not in streamed
    assert streamed.endswith("time not measured (replay)")


def test_the_footer_times_a_real_provider():
    from akash_nb import _render as render

    assert render.footer_text("m", "local", "stop", None, seconds=0.38).endswith("· 0.38 s")
    streamed = render.footer_text(
        "m", "local", "stop", None, seconds=0.5, first_token_seconds=0.1, streamed=True
    )
    assert "first token 0.10 s · total 0.50 s" in streamed
    assert "not measured" not in render.footer_text("m", "replay", "stop", None)  # no time, no claim
