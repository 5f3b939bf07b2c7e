"""Every file the package reads, corrupted: `.env`, recordings, saved conversations, the embedded server's
state file, and the lessons given to `make notebooks` / `make docs`.

Each variant (truncated, the wrong JSON shape, wrong field types, nulls, binary, huge, a folder in its
place, unreadable) either works or gives one sentence naming the file and the fix, and the file is left
exactly as it was. Named variants first, then Hypothesis properties over random JSON and random cuts.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import nbformat
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

import akash_nb
from akash_nb import cli
from akash_nb._conversation import Conversation
from akash_nb._core import config
from akash_nb._core.exceptions import AkashNBError
from akash_nb._engine import embedded
from akash_nb._replay import cassettes
from akash_nb._tools import notebooks

pytestmark = pytest.mark.faults

# Root reads a chmod 000 file all the same; on Windows chmod sets only the read-only flag (os.geteuid
# does not exist there), so a file cannot be made unreadable that way either.
AS_ROOT = sys.platform == "win32" or os.geteuid() == 0
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def one_sentence_naming(error: AkashNBError, path: Path) -> None:
    assert "\n" not in error.sentence and error.sentence.endswith("."), error.sentence
    assert str(path) in error.sentence or path.name in error.sentence, error.sentence


def variants(valid: bytes) -> dict[str, bytes | None]:
    """Corrupt versions of a valid file's bytes (None: a folder in its place)."""
    return {
        "truncated": valid[: len(valid) // 2],
        "empty": b"",
        "a JSON list": b"[1, 2, 3]",
        "a JSON string": b'"hello"',
        "a JSON number": b"42",
        "null": b"null",
        "binary": bytes(range(256)),
        "latin-1 text": '{"model": "caf\xe9"}'.encode("latin-1"),
        "NUL bytes": b"\x00" * 64,
        "a folder": None,
    }


def place(path: Path, content: bytes | None) -> None:
    if content is None:
        path.mkdir()
        (path / "inside.txt").write_text("kept")
    else:
        path.write_bytes(content)


def corrupt(path: Path, variant: str, valid: bytes, shapes: dict[str, object]) -> None:
    """Write at `path` the named variant: valid JSON of a wrong shape from `shapes`, or one of variants()."""
    if variant in shapes:
        path.write_text(json.dumps(shapes[variant]))
    else:
        place(path, variants(valid)[variant])


def snapshot(path: Path):
    if path.is_dir():
        return sorted((p.name, p.read_bytes()) for p in path.iterdir())
    return path.read_bytes() if path.exists() else None


# --- saved conversations ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(server):
    return akash_nb.client("openai-compatible", base_url=server.url, show=False, max_retries=0)


VALID_CONVERSATION = json.dumps(
    {
        "model": "m",
        "system": "Be brief.",
        "params": {"temperature": 0},
        "budget_tokens": None,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
        ],
    }
).encode()
CONVERSATION_SHAPES = {
    "model a number": {"model": 5, "system": None, "params": {}, "messages": []},
    "model null": {"model": None, "system": None, "params": {}, "messages": []},
    "system a list": {"model": "m", "system": ["x"], "params": {}, "messages": []},
    "params a list": {"model": "m", "system": None, "params": [1], "messages": []},
    "params holding messages": {"model": "m", "system": None, "params": {"messages": []}, "messages": []},
    "params holding a non-name": {"model": "m", "system": None, "params": {"not a name": 1}, "messages": []},
    "budget a string": {"model": "m", "system": None, "params": {}, "budget_tokens": "9", "messages": []},
    "messages a dict": {"model": "m", "system": None, "params": {}, "messages": {"role": "user"}},
    "a message a string": {"model": "m", "system": None, "params": {}, "messages": ["hi", "there"]},
    "content null": {
        "model": "m",
        "system": None,
        "params": {},
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": None}],
    },
    "content a number": {
        "model": "m",
        "system": None,
        "params": {},
        "messages": [{"role": "user", "content": 1}, {"role": "assistant", "content": "x"}],
    },
    "role a number": {
        "model": "m",
        "system": None,
        "params": {},
        "messages": [{"role": 1, "content": "Hi"}, {"role": "assistant", "content": "x"}],
    },
    "half a turn": {
        "model": "m",
        "system": None,
        "params": {},
        "messages": [{"role": "user", "content": "Hi"}],
    },
    "no messages field": {"model": "m", "system": None, "params": {}},
}


@pytest.mark.parametrize(
    "variant",
    list(variants(VALID_CONVERSATION)) + list(CONVERSATION_SHAPES) + ["a symlink loop", "unreadable"],
)
def test_a_corrupt_saved_conversation_is_one_sentence_and_left_as_it_was(client, tmp_path, variant):
    path = tmp_path / "chat.json"
    if variant == "a symlink loop":
        path.symlink_to(path)
    elif variant == "unreadable":
        if AS_ROOT:
            pytest.skip("root reads a chmod 000 file")
        path.write_bytes(VALID_CONVERSATION)
        path.chmod(0)
    else:
        corrupt(path, variant, VALID_CONVERSATION, CONVERSATION_SHAPES)
    before = snapshot(path) if not path.is_symlink() else None
    with pytest.raises(AkashNBError) as caught:
        Conversation.load(path, client)
    one_sentence_naming(caught.value, path)
    assert "conversation.save(path)" in caught.value.sentence  # the fix
    if before is not None:
        assert snapshot(path) == before  # nothing lost


def test_a_valid_saved_conversation_loads(client, tmp_path):
    path = tmp_path / "chat.json"
    path.write_bytes(VALID_CONVERSATION)
    chat = Conversation.load(path, client)
    assert chat.messages[-1] == {"role": "assistant", "content": "Hello."}


def test_a_huge_saved_conversation_loads_whole(client, tmp_path):
    path = tmp_path / "chat.json"
    turns = [
        m
        for i in range(2000)
        for m in (
            {"role": "user", "content": f"q{i} " * 200},
            {"role": "assistant", "content": f"a{i} " * 200},
        )
    ]
    path.write_text(json.dumps({"model": "m", "system": None, "params": {}, "messages": turns}))
    assert len(Conversation.load(path, client).history) == 2000


@pytest.mark.skipif(AS_ROOT, reason="root writes into a read-only folder all the same")
def test_saving_into_a_read_only_folder_is_a_sentence_and_keeps_the_old_file(client, tmp_path):
    path = tmp_path / "chat.json"
    path.write_bytes(VALID_CONVERSATION)
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(AkashNBError, match="Could not save the conversation"):
            Conversation(client, "m").save(path)
    finally:
        tmp_path.chmod(0o700)
    assert path.read_bytes() == VALID_CONVERSATION


def test_saving_over_a_folder_is_a_sentence_and_keeps_the_folder(client, tmp_path):
    path = tmp_path / "chat.json"
    place(path, None)
    with pytest.raises(AkashNBError) as caught:
        Conversation(client, "m").save(path)
    one_sentence_naming(caught.value, path)
    assert (path / "inside.txt").read_text() == "kept"


@given(data=JSON_VALUES)
def test_property_any_json_as_a_saved_conversation(client, tmp_path_factory, data):
    path = tmp_path_factory.mktemp("conv") / "chat.json"
    path.write_text(json.dumps(data))
    try:
        Conversation.load(path, client)
    except AkashNBError as error:
        one_sentence_naming(error, path)
    assert path.read_text() == json.dumps(data)


@given(cut=st.integers(min_value=0, max_value=len(VALID_CONVERSATION) - 1), flip=st.integers(0, 255))
def test_property_any_cut_or_changed_byte_of_a_saved_conversation(client, tmp_path_factory, cut, flip):
    path = tmp_path_factory.mktemp("conv") / "chat.json"
    for content in (
        VALID_CONVERSATION[:cut],
        VALID_CONVERSATION[:cut] + bytes([flip]) + VALID_CONVERSATION[cut + 1 :],
    ):
        path.write_bytes(content)
        try:
            Conversation.load(path, client)
        except AkashNBError as error:
            one_sentence_naming(error, path)
        assert path.read_bytes() == content


# --- .env ------------------------------------------------------------------------------------------------

ENV_VARIANTS = {
    "binary": bytes(range(256)),
    "latin-1": "AKASH_NB_API_KEY=cl\xe9\n".encode("latin-1"),
    "NUL bytes": b"AKASH_NB_API_KEY=abc\x00def\n",
    "an unterminated quote": b"AKASH_NB_API_KEY='abc\n",
    "no equals sign": b"AKASH_NB_API_KEY\n",
    "a BOM": "\ufeffAKASH_NB_API_KEY=key-0123456789\n".encode(),
    "export lines": b"export AKASH_NB_API_KEY=key-0123456789\n",
    "huge": b"".join(f"VARIABLE_{i}=value{i}\n".encode() for i in range(50_000)),
    "a folder": None,
    "a symlink loop": b"",
}


@pytest.mark.parametrize("variant", list(ENV_VARIANTS))
def test_a_corrupt_env_file_works_or_is_one_sentence_naming_it(tmp_path, variant):
    path = tmp_path / ".env"
    if variant == "a symlink loop":
        path.symlink_to(path)
    else:
        place(path, ENV_VARIANTS[variant])
    before = None if variant == "a symlink loop" else snapshot(path)
    try:
        settings = config.resolve("openai-compatible", base_url="http://h/v1", environ={}, dotenv_path=path)
    except AkashNBError as error:  # either outcome is right: a working setting, or one sentence
        refused: AkashNBError | None = error
    else:
        refused = None
        assert settings.provider.name == "openai-compatible"
    if refused is not None:
        one_sentence_naming(refused, path)
        assert (
            "fix it" in refused.sentence or "paste" in refused.sentence or "copy the key" in refused.sentence
        )
    if before is not None:
        assert snapshot(path) == before


def test_an_env_file_found_from_the_working_directory_that_is_binary_is_one_sentence(tmp_path, monkeypatch):
    (tmp_path / ".env").write_bytes(bytes(range(256)))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AkashNBError) as caught:
        akash_nb.client("openai-compatible", base_url="http://h/v1", show=False)
    one_sentence_naming(caught.value, tmp_path / ".env")


@given(text=st.text(max_size=200))
def test_property_any_text_as_an_env_file(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("env") / ".env"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        config.resolve(environ={}, dotenv_path=path, prompt=lambda message: None)
    except AkashNBError as error:  # either outcome is right: a working setting, or one sentence
        sentence = error.sentence
    else:
        sentence = "resolved."
    assert "\n" not in sentence and sentence.endswith(".")


# --- recordings ------------------------------------------------------------------------------------------

REQUEST = {"model": "fault-model", "messages": [{"role": "user", "content": "Hi"}], "temperature": 0}
VALID_RECORDING = json.dumps(
    {
        "request": {"method": "POST", "path": "/v1/chat/completions", "body": REQUEST},
        "response": {
            "status": 200,
            "content_type": "application/json",
            "body": {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "fault-model",
                "choices": [
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hi!"}}
                ],
            },
        },
        "meta": {"upstream": "local", "model": "fault-model", "recorded": "2026-12-01"},
    }
).encode()
RECORDING_SHAPES = {
    "response null": {"request": {}, "response": None},
    "response a list": {"request": {}, "response": [200]},
    "status a string": {"response": {"status": "200", "content_type": "application/json", "body": {}}},
    "status out of range": {"response": {"status": 9999, "content_type": "application/json", "body": {}}},
    "content type with a line break": {"response": {"status": 200, "content_type": "a\nb", "body": {}}},
    "no body": {"response": {"status": 200, "content_type": "application/json"}},
    "events not a list": {"response": {"events": "data"}},
    "events of numbers": {"response": {"events": [1, 2]}},
    "meta a list": {"response": {"status": 200, "content_type": "application/json", "body": {}}, "meta": [1]},
}


def replay_client(folder: Path, monkeypatch) -> openai.OpenAI:
    monkeypatch.setenv("AKASH_NB_RECORDINGS", str(folder))
    return akash_nb.client("replay", show=False)


@pytest.mark.parametrize(
    "variant", list(variants(VALID_RECORDING)) + list(RECORDING_SHAPES) + ["a symlink loop"]
)
def test_a_corrupt_recording_is_one_sentence_naming_it_and_left_as_it_was(tmp_path, monkeypatch, variant):
    folder = tmp_path / "recordings"
    folder.mkdir()
    path = folder / f"{cassettes.request_key('POST', '/v1/chat/completions', REQUEST)}.json"
    if variant == "a symlink loop":
        path.symlink_to(path)
    else:
        corrupt(path, variant, VALID_RECORDING, RECORDING_SHAPES)
    before = None if variant == "a symlink loop" else snapshot(path)
    client = replay_client(folder, monkeypatch)  # describing the folder never fails on a bad file
    if variant == "meta a list":
        client.chat.completions.create(**REQUEST)  # the answer itself is fine
        return
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(**REQUEST)
    error = akash_nb._render.error_sentence(caught.value)
    one_sentence_naming(error, path)
    assert "record it again with `make record`" in error.sentence
    if before is not None:
        assert snapshot(path) == before


def test_a_valid_recording_replays(tmp_path, monkeypatch):
    folder = tmp_path / "recordings"
    folder.mkdir()
    key = cassettes.request_key("POST", "/v1/chat/completions", REQUEST)
    (folder / f"{key}.json").write_bytes(VALID_RECORDING)
    client = replay_client(folder, monkeypatch)
    assert client.chat.completions.create(**REQUEST).choices[0].message.content == "Hi!"


@given(data=JSON_VALUES)
def test_property_any_json_as_a_recording(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("rec") / "x.json"
    path.write_text(json.dumps(data))
    try:
        cassettes.read_recording(path)
    except ValueError as error:  # what ReplayServer.answer turns into the sentence above
        why = str(error)
    else:
        why = "read."
    assert "\n" not in why
    assert path.read_text() == json.dumps(data)


# --- the embedded server's state file ------------------------------------------------------------------

VALID_STATE = json.dumps(
    {
        "pid": 999999,
        "port": 1,
        "key": "k" * 32,
        "model": "m",
        "model_path": "/m",
        "log": "/l",
        "config": "abc123abc123",
        "engine": "/e",
    }
).encode()
STATE_SHAPES = {
    "pid a string": {**json.loads(VALID_STATE), "pid": "many"},
    "pid null": {**json.loads(VALID_STATE), "pid": None},
    "pid 1 (init)": {**json.loads(VALID_STATE), "pid": 1},
    "pid 0 (our own process group)": {**json.loads(VALID_STATE), "pid": 0},
    "port out of range": {**json.loads(VALID_STATE), "port": 70000},
    "no key": {k: v for k, v in json.loads(VALID_STATE).items() if k != "key"},
    "port a list": {**json.loads(VALID_STATE), "port": [1]},
}


@pytest.mark.parametrize("variant", list(variants(VALID_STATE)) + list(STATE_SHAPES))
def test_a_corrupt_state_file_is_one_sentence_naming_it_and_left_as_it_was(state_dir, variant):
    path = embedded.state_file("abc123abc123")
    corrupt(path, variant, VALID_STATE, STATE_SHAPES)
    before = snapshot(path)
    try:
        with pytest.raises(AkashNBError) as caught:
            embedded.recorded_servers()  # what `akash-nb stop --all` and ensure_server() read
        one_sentence_naming(caught.value, path)
        assert "delete it" in caught.value.sentence
        assert snapshot(path) == before
    finally:  # the fixture's stop_all() reads the folder too
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def test_a_valid_state_file_is_read(state_dir):
    embedded.state_file("abc123abc123").write_bytes(VALID_STATE)
    assert [s.pid for s in embedded.recorded_servers()] == [999999]
    embedded.state_file("abc123abc123").unlink()


# --- lessons given to make notebooks / make docs -------------------------------------------------------

VALID_LESSON = nbformat.writes(
    nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Lesson")])
).encode()
LESSON_SHAPES = {
    "cells a dict": {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": {}},
    "a cell a string": {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": ["x"]},
    "nbformat 99": {"nbformat": 99, "nbformat_minor": 0, "metadata": {}, "cells": []},
    "no cells": {"nbformat": 4, "nbformat_minor": 5, "metadata": {}},
}


@pytest.mark.parametrize("variant", list(variants(VALID_LESSON)) + list(LESSON_SHAPES))
def test_a_corrupt_lesson_is_one_sentence_for_make_notebooks_and_make_docs(tmp_path, capsys, variant):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    path = folder / "01-lesson.ipynb"
    corrupt(path, variant, VALID_LESSON, LESSON_SHAPES)
    before = snapshot(path)
    with pytest.raises(AkashNBError) as caught:
        notebooks.read_lesson(path)
    one_sentence_naming(caught.value, path)
    assert "git checkout" in caught.value.sentence
    if variant != "a folder":  # a folder is not a lesson by its name alone: glob finds it all the same
        assert notebooks.refresh([path]) == [path]  # make notebooks: FAIL with the sentence, not rewritten
        assert caught.value.sentence in capsys.readouterr().out
    assert cli.main(["export-docs", "--folder", str(folder), "--out", str(tmp_path / "out")]) == 2
    assert caught.value.sentence in capsys.readouterr().err
    assert snapshot(path) == before
