"""Replay: recorded answers served by a real loopback server to the real openai client.

Recordings come from the real embedded model (and, where a key must be proven absent, from a tiny fake
upstream in this file that insists on a Bearer key). Replay then answers with no upstream at all.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nbformat
import openai
import pytest

import akash_nb
from akash_nb import cli
from akash_nb._core.exceptions import ConfigError, NoRecordingError
from akash_nb._core.failures import explain
from akash_nb._core.providers import LOCAL_MODEL_NAME
from akash_nb._replay import cassettes, loopback

PROMPT = "Once upon a time, in a land far, far away"
ASKED_MODEL = "Meta-Llama-3-1-8B-Instruct-FP8"  # the guide's model; the local server answers instead
REPLAY_VARIABLES = (cassettes.MODE_ENV, cassettes.UPSTREAM_ENV, cassettes.USED_ENV, cassettes.FOLDER_ENV)


@pytest.fixture(autouse=True)
def no_replay_settings(monkeypatch):
    for name in REPLAY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def chat(client: openai.OpenAI, prompt: str = PROMPT, **extra: Any):
    params = {"max_tokens": 16, "temperature": 0, **extra}
    return client.chat.completions.create(
        model=ASKED_MODEL, messages=[{"role": "user", "content": prompt}], **params
    )


def streamed_pieces(client: openai.OpenAI, prompt: str = PROMPT) -> list[str]:
    return [
        chunk.choices[0].delta.content or "" for chunk in chat(client, prompt, stream=True) if chunk.choices
    ]


def sdk(server: loopback.ReplayServer, key: str = "no-key-needed", retries: int = 2) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=retries, timeout=60)


# --- recorded once from the real embedded model ---------------------------------------------------------


@dataclass
class Recorded:
    folder: Path
    content: str
    model: str
    finish_reason: str
    pieces: list[str]
    models: list[str]


@pytest.fixture(scope="module")
def recorded(shared_local_server, tmp_path_factory) -> Iterator[Recorded]:
    """Record a chat completion, a streamed one and /models from the real local model."""
    folder = tmp_path_factory.mktemp("recordings")
    server = loopback.ensure_server(folder, mode="record", upstream="local")
    client = sdk(server)
    response = chat(client)
    yield Recorded(
        folder=folder,
        content=response.choices[0].message.content or "",
        model=response.model,
        finish_reason=response.choices[0].finish_reason,
        pieces=streamed_pieces(client),
        models=[m.id for m in client.models.list()],
    )
    server.close()


@pytest.fixture
def replaying(recorded, monkeypatch, tmp_path) -> Iterator[loopback.ReplayServer]:
    """A replay server on the recordings, with no upstream to fall back on, noting what it uses."""
    monkeypatch.setenv("AKASH_NB_STATE_DIR", str(tmp_path / "no-local-server-here"))
    monkeypatch.setenv(cassettes.USED_ENV, str(tmp_path / "used.txt"))
    server = loopback.ensure_server(recorded.folder)
    assert server.upstream is None
    yield server
    server.close()


def used(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "used.txt"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.live
def test_replay_answers_as_the_model_did(recorded, replaying, tmp_path):
    response = chat(sdk(replaying))
    assert response.choices[0].message.content == recorded.content
    assert response.model == recorded.model
    assert response.choices[0].finish_reason == recorded.finish_reason
    assert recorded.content.strip(), "the real model answered something"
    assert [outcome for _, outcome in used(tmp_path)] == ["replayed"]


@pytest.mark.live
def test_streamed_replay_yields_the_same_chunks(recorded, replaying):
    pieces = streamed_pieces(sdk(replaying))
    assert pieces == recorded.pieces
    assert len([p for p in pieces if p]) > 1, "a real stream arrives in several chunks"


@pytest.mark.live
def test_models_replay(recorded, replaying):
    assert [m.id for m in sdk(replaying).models.list()] == recorded.models == [LOCAL_MODEL_NAME]


@pytest.mark.live
def test_recordings_are_small_readable_json_named_by_their_hash(recorded):
    files = cassettes.recordings(recorded.folder)
    assert len(files) == 3
    kinds = set()
    for path in files:
        text = path.read_text()
        assert text.startswith("{\n") and text.endswith("}\n")
        data = json.loads(text)
        request, response, meta = data["request"], data["response"], data["meta"]
        assert path.stem == cassettes.request_key(request["method"], request["path"], request["body"])
        assert meta["upstream"] == "local"
        assert meta["model"] == LOCAL_MODEL_NAME  # what answered, not the model the client asked for
        assert len(meta["recorded"]) == 10  # YYYY-MM-DD
        if "events" in response:
            kinds.add("stream")
            assert response["content_type"] == "text/event-stream"
            assert response["events"][-1] == "[DONE]"
        else:
            kinds.add(request["path"])
            assert response["status"] == 200 and isinstance(response["body"], dict)
    assert kinds == {"stream", "/v1/chat/completions", "/v1/models"}


@pytest.mark.live
def test_describe_source_names_upstream_and_model(recorded, replaying):
    assert replaying.describe_source() == f"recorded from local: {LOCAL_MODEL_NAME}"


def test_describe_source_lists_mixed_sources(tmp_path):
    for n, (upstream, model) in enumerate([("local", "m1"), ("akashml", "b"), ("akashml", "a")]):
        cassettes.write_recording(
            tmp_path,
            {
                "request": {"method": "POST", "path": "/v1/chat/completions", "body": {"n": n}},
                "response": {"status": 200, "content_type": "application/json", "body": {}},
                "meta": {"upstream": upstream, "model": model, "recorded": "2026-01-01"},
            },
        )
    assert cassettes.describe_recordings(tmp_path) == "recorded from akashml: a, b; local: m1"
    assert cassettes.describe_recordings(tmp_path / "x") == f"no recordings yet in {tmp_path / 'x'}"


@pytest.mark.live
def test_an_unrecorded_request_fails_fast_with_a_sentence(replaying, tmp_path):
    client = sdk(replaying, retries=2)
    started = time.monotonic()
    with pytest.raises(openai.NotFoundError) as caught:
        chat(client, "Tell me a completely different story about seven dragons and one brave knight")
    took = time.monotonic() - started
    error = explain(caught.value, "recorded answers (replay)")
    assert isinstance(error, NoRecordingError)
    sentence = error.sentence
    assert sentence.startswith("No recording for POST /v1/chat/completions, model " + ASKED_MODEL)
    assert '"Tell me a completely different story about seven …"' in sentence  # the first eight words
    assert "make record" in sentence and str(replaying.folder) in sentence
    assert took < 2.0
    assert [outcome for _, outcome in used(tmp_path)] == ["missed"]  # asked once: the SDK did not retry


@pytest.mark.live
def test_a_changed_parameter_is_a_different_recording(replaying):
    with pytest.raises(openai.NotFoundError):
        chat(sdk(replaying), temperature=0.5)


def test_an_unreadable_recording_is_one_sentence(tmp_path):
    (tmp_path / f"{cassettes.request_key('GET', '/v1/models', None)}.json").write_text("{ truncated")
    server = loopback.ensure_server(tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as caught:
            sdk(server, retries=2).models.list()
        assert time.monotonic() - started < 2.0  # x-should-retry: false, so the SDK does not retry a 500
    finally:
        server.close()
    error = explain(caught.value, "recorded answers (replay)")
    assert isinstance(error, NoRecordingError)
    assert "cannot be read" in error.sentence and "make record" in error.sentence


def test_a_missing_folder_is_a_config_error(tmp_path, monkeypatch):
    missing = tmp_path / "never-recorded"
    with pytest.raises(ConfigError, match="make record") as caught:
        loopback.ensure_server(missing)
    assert str(missing) in caught.value.sentence
    monkeypatch.setenv(cassettes.FOLDER_ENV, str(missing))
    with pytest.raises(ConfigError, match="never-recorded"):
        akash_nb.client(provider="replay", show=False)


def test_the_folder_lookup_order(tmp_path, monkeypatch):
    """The default is the repository's top-level recordings/, not test data: the provider reads no tests/."""
    assert cassettes.recordings_folder() == Path(akash_nb.__file__).resolve().parents[1] / "recordings"
    monkeypatch.setenv(cassettes.FOLDER_ENV, str(tmp_path / "env"))
    assert cassettes.recordings_folder() == tmp_path / "env"
    assert cassettes.recordings_folder(tmp_path / "arg") == tmp_path / "arg"


def test_the_repository_folder_is_shown_from_the_repository_root(tmp_path):
    assert cassettes.shown_folder(cassettes.repository_folder()) == "recordings"
    assert cassettes.shown_folder(cassettes.repository_folder() / "abc.json") == str(
        Path("recordings", "abc.json")
    )
    assert cassettes.shown_folder(tmp_path) == str(tmp_path)


def test_an_unknown_mode_or_upstream_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv(cassettes.MODE_ENV, "recrod")
    with pytest.raises(ConfigError, match="replay, record, rerecord"):
        loopback.ensure_server(tmp_path)
    with pytest.raises(ConfigError, match="local, akashml, or an http"):
        loopback.ensure_server(tmp_path, mode="record", upstream="ftp://example.org")


@pytest.mark.live
def test_client_end_to_end(recorded, monkeypatch):
    monkeypatch.setenv(cassettes.FOLDER_ENV, str(recorded.folder))
    client = akash_nb.client(provider="replay", show=False)
    connection = akash_nb.connection_for(client)
    assert connection.provider.name == "replay"
    assert connection.detail == f"recorded from local: {LOCAL_MODEL_NAME}"
    assert akash_nb.served_models(client) == [LOCAL_MODEL_NAME]
    response = chat(client)
    assert (response.model, response.choices[0].message.content) == (recorded.model, recorded.content)


# --- the hash ---------------------------------------------------------------------------------------------


def test_the_key_ignores_key_order_and_whitespace():
    compact = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0}'
    spaced = b'{ "temperature": 0,\n  "messages": [ {"content": "hi", "role": "user"} ],  "model": "m" }'
    parsed = {"temperature": 0, "model": "m", "messages": [{"content": "hi", "role": "user"}]}
    keys = {cassettes.request_key("POST", "/v1/chat/completions", body) for body in (compact, spaced, parsed)}
    assert len(keys) == 1
    assert len(keys.pop()) == 16


def test_the_key_covers_method_path_and_every_parameter():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    base = cassettes.request_key("POST", "/v1/chat/completions", body)
    assert base != cassettes.request_key("POST", "/v1/chat/completions", {**body, "temperature": 0.7})
    assert base != cassettes.request_key("POST", "/v1/chat/completions", {**body, "stream": True})
    assert base != cassettes.request_key("POST", "/v1/completions", body)
    assert cassettes.request_key("GET", "/v1/models", None) == cassettes.request_key("get", "/v1/models", b"")


# --- a fake upstream that insists on a key ----------------------------------------------------------------

UPSTREAM_KEY = "upstream-secret-7d1f93"
CLIENT_KEY = "client-secret-a44e07"


@dataclass
class FakeUpstream:
    url: str
    authorizations: list[str] = field(default_factory=list)


class _FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization", "")
        self.server.fake.authorizations.append(auth)
        if auth != f"Bearer {UPSTREAM_KEY}":
            self._send(401, b'{"error": {"message": "bad key", "type": "auth"}}')
            return
        if self.path.endswith("/models"):
            self._send(200, b'{"object": "list", "data": [{"id": "fake-model", "object": "model"}]}')
            return
        request = json.loads(raw)
        text = "echo: " + request["messages"][-1]["content"]
        if request.get("stream"):
            chunks = [
                {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": "fake-model",
                    "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
                }
                for word in text.split(" ")
            ]
            events = [json.dumps(c) for c in chunks] + ["[DONE]"]
            # CRLF, comments and one event split over two writes: what real servers do
            body = ": ping\r\n\r\n" + "".join(f"data: {e}\r\n\r\n" for e in events)
            self._send(200, body.encode(), "text/event-stream; charset=utf-8")
            return
        answer = {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": "fake-model",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
        }
        self._send(200, json.dumps(answer).encode())

    do_POST = do_GET


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FakeHandler)
    httpd.daemon_threads = True
    fake = FakeUpstream(f"http://127.0.0.1:{httpd.server_address[1]}/v1")
    httpd.fake = fake  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    yield fake
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def recording_fake(fake_upstream, tmp_path, monkeypatch) -> Iterator[loopback.ReplayServer]:
    monkeypatch.setenv("AKASH_NB_API_KEY", UPSTREAM_KEY)
    monkeypatch.setenv(cassettes.USED_ENV, str(tmp_path / "used.txt"))
    server = loopback.ensure_server(tmp_path / "rec", mode="record", upstream=fake_upstream.url)
    yield server
    server.close()


def test_the_key_goes_upstream_but_never_into_a_recording(fake_upstream, recording_fake, tmp_path):
    client = sdk(recording_fake)  # the key replay hands out: the upstream's own key replaces it
    assert chat(client).choices[0].message.content == f"echo: {PROMPT}"
    assert "".join(streamed_pieces(client)) == "echo:" + PROMPT.replace(" ", "")
    assert [m.id for m in client.models.list()] == ["fake-model"]
    assert fake_upstream.authorizations == [f"Bearer {UPSTREAM_KEY}"] * 3
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(cassettes.recordings(tmp_path / "rec")) == 3
    for path in files:
        text = path.read_text().lower()
        for secret in (UPSTREAM_KEY, CLIENT_KEY, "authorization", "bearer"):
            assert secret.lower() not in text, f"{secret} written to {path}"


def test_a_recorded_stream_keeps_every_event(fake_upstream, recording_fake, tmp_path):
    streamed_pieces(sdk(recording_fake))
    (path,) = cassettes.recordings(tmp_path / "rec")
    events = json.loads(path.read_text())["response"]["events"]
    assert events[-1] == "[DONE]"
    assert [json.loads(e)["choices"][0]["delta"]["content"] for e in events[:-1]] == [
        "echo:",
        *PROMPT.split(" "),
    ]
    assert json.loads(path.read_text())["meta"]["upstream"] == fake_upstream.url.split("/")[2]


def test_a_learners_own_key_is_judged_by_the_upstream_recorded_apart_and_replayed(
    fake_upstream, recording_fake, tmp_path
):
    """Lesson 07 sends a wrong key on purpose: it goes upstream as sent (so the real server refuses it),
    the 401 is recorded under a name of its own (the right key's answer is untouched), and the key itself
    is written nowhere."""
    assert chat(sdk(recording_fake)).choices[0].message.content == f"echo: {PROMPT}"
    with pytest.raises(openai.AuthenticationError):
        chat(sdk(recording_fake, key=CLIENT_KEY, retries=0))
    assert fake_upstream.authorizations == [f"Bearer {UPSTREAM_KEY}", f"Bearer {CLIENT_KEY}"]
    assert len(cassettes.recordings(tmp_path / "rec")) == 2
    for path in tmp_path.rglob("*.json"):
        text = path.read_text().lower()
        for secret in (UPSTREAM_KEY, CLIENT_KEY, "authorization", "bearer"):
            assert secret.lower() not in text, f"{secret} written to {path}"
    replaying = loopback.ensure_server(tmp_path / "rec", mode="replay")
    try:
        with pytest.raises(openai.AuthenticationError):
            chat(sdk(replaying, key="any-other-key", retries=0))
        assert chat(sdk(replaying)).choices[0].message.content == f"echo: {PROMPT}"
    finally:
        replaying.close()


def test_replay_outlasts_a_timeout_the_real_answer_outlasted(tmp_path):
    """A recorded answer that took longer than the client's timeout (meta "seconds") times out again
    under replay; a client with a longer timeout gets it at once."""
    folder = tmp_path / "rec"
    folder.mkdir()
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "slow"}],
        "max_tokens": 5,
        "temperature": 0,
    }
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
    }
    answer = {"status": 200, "content_type": "application/json", "body": completion}
    request = cassettes.Request("POST", "/v1/chat/completions", body)
    cassettes.write_recording(
        folder, {"request": request.to_json(), "response": answer, "meta": {"seconds": 2.0}}
    )
    server = loopback.ensure_server(folder, mode="replay")
    try:
        client = sdk(server, retries=0)
        with pytest.raises(openai.APITimeoutError):
            client.with_options(timeout=0.3).chat.completions.create(**body)
        assert client.with_options(timeout=5).chat.completions.create(**body).choices[0].message.content
    finally:
        server.close()


def test_a_rejected_key_passes_through_unrecorded(fake_upstream, tmp_path, monkeypatch):
    monkeypatch.setenv("AKASH_NB_API_KEY", "wrong-key")
    server = loopback.ensure_server(tmp_path / "rec", mode="record", upstream=fake_upstream.url)
    try:
        with pytest.raises(openai.AuthenticationError):
            chat(sdk(server))
    finally:
        server.close()
    assert cassettes.recordings(tmp_path / "rec") == []


def test_record_mode_reuses_and_rerecord_asks_again(fake_upstream, recording_fake, tmp_path):
    client = sdk(recording_fake)
    first = chat(client).choices[0].message.content
    assert chat(client).choices[0].message.content == first
    assert len(fake_upstream.authorizations) == 1  # the second answer came from the recording
    again = loopback.ensure_server(tmp_path / "rec", mode="rerecord", upstream=fake_upstream.url)
    try:
        chat(sdk(again))
    finally:
        again.close()
    assert len(fake_upstream.authorizations) == 2
    assert [outcome for _, outcome in used(tmp_path)] == ["written", "reused", "written"]


def test_an_unreachable_upstream_is_one_sentence(tmp_path, monkeypatch):
    server = loopback.ensure_server(tmp_path / "rec", mode="record", upstream="http://127.0.0.1:9/v1")
    try:
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as caught:
            chat(sdk(server))
        assert time.monotonic() - started < 2.0  # x-should-retry: false
    finally:
        server.close()
    assert "could not reach 127.0.0.1:9" in caught.value.message


# --- the recorder CLI ---------------------------------------------------------------------------------------


def lesson(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, path)
    return path


def test_record_with_no_notebooks_does_nothing(tmp_path, capsys):
    assert cli.main(["record", "--recordings", str(tmp_path / "rec")]) == 0
    assert "No notebooks to record" in capsys.readouterr().out


def test_record_runs_notebooks_and_reports(fake_upstream, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AKASH_NB_API_KEY", UPSTREAM_KEY)
    folder, lessons = tmp_path / "rec", tmp_path / "notebooks"
    folder.mkdir()
    lessons.mkdir()
    stale = folder / "0000000000000000.json"
    stale.write_text("{}\n")
    good = lesson(
        lessons / "01-hello.ipynb",
        "import akash_nb\nclient = akash_nb.client(show=False)",
        f"r = client.chat.completions.create(model='m', messages=[{{'role': 'user', 'content': {PROMPT!r}}}])"
        "\nprint(r.choices[0].message.content)",
    )
    broken = lesson(lessons / "02-broken.ipynb", "raise ValueError('broken on purpose')")
    args = ["record", "--upstream", fake_upstream.url, "--recordings", str(folder)]

    assert cli.main([*args, str(good), str(broken)]) == 1
    out = capsys.readouterr().out
    # the failing cell named as every tool names it (notebooks.cell_name), then the error
    assert any(
        line.startswith(f"FAIL {broken}: cell 1 (counting markdown; first line: ")
        and line.endswith("ValueError: broken on purpose")
        for line in out.splitlines()
    ), out
    assert "1 recording(s) written, 0 reused." in out
    assert "1 unused recording(s) (delete them with --prune): 0000000000000000.json" in out

    assert cli.main([*args, "--prune", str(good)]) == 0
    out = capsys.readouterr().out
    assert "0 recording(s) written, 1 reused." in out
    assert not stale.exists()
    assert len(cassettes.recordings(folder)) == 1


def test_record_without_the_upstream_key_stops_before_any_notebook(tmp_path, capsys):
    notebook = lesson(tmp_path / "01-never-run.ipynb", "raise AssertionError('ran')")
    assert (
        cli.main(["record", "--upstream", "akashml", "--recordings", str(tmp_path / "rec"), str(notebook)])
        == 2
    )
    err = capsys.readouterr().err
    assert "AKASHML_API_KEY" in err and "ran" not in err


# --- identical requests: each sample is its own recording -------------------------------------------------


@pytest.mark.live
def test_repeated_sampled_requests_replay_the_answers_really_given(
    shared_local_server, tmp_path, monkeypatch
):
    """Asking twice at temperature > 0 gets two samples; replay gives back those two, in order, and
    refuses a third rather than repeat one as if the model had."""
    monkeypatch.setenv("AKASH_NB_STATE_DIR", str(shared_local_server))
    folder = tmp_path / "samples"
    recorder = loopback.ensure_server(folder, mode="rerecord", upstream="local")
    live = [
        chat(sdk(recorder), "Name a colour.", temperature=1.5).choices[0].message.content for _ in range(2)
    ]
    recorder.close()
    first = cassettes.request_key(
        "POST",
        "/v1/chat/completions",
        json.loads((folder / next(p.name for p in cassettes.recordings(folder))).read_text())["request"][
            "body"
        ],
    )
    assert {p.name for p in cassettes.recordings(folder)} == {f"{first}.json", f"{first}-2.json"}

    server = loopback.ensure_server(folder)
    client = sdk(server)
    replayed = [chat(client, "Name a colour.", temperature=1.5).choices[0].message.content for _ in range(2)]
    assert replayed == live
    with pytest.raises(openai.NotFoundError) as caught:
        chat(client, "Name a colour.", temperature=1.5)
    sentence = explain(caught.value, "replay").sentence
    assert "asked 3 times" in sentence and "make record" in sentence
    server.close()


@pytest.mark.live
def test_a_deterministic_request_has_one_recording_for_every_repeat(recorded, replaying):
    client = sdk(replaying)
    answers = {chat(client).choices[0].message.content for _ in range(3)}
    assert answers == {recorded.content}
    assert [m.id for m in client.models.list()] == [m.id for m in client.models.list()]
