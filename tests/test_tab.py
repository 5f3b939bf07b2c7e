"""A browser tab's parts that are plain Python (_core/in_browser.py, _replay/in_tab.py, cassettes.Recordings),
checked under CPython; tests/test_pyodide.py runs them for real under Pyodide in Chromium. IN_BROWSER is
patched only where the code asks nothing else of the tab."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import pytest

from akash_nb import _clients, generated_code
from akash_nb._core import config
from akash_nb._core import in_browser as browser
from akash_nb._core.exceptions import LocalServerError
from akash_nb._engine import embedded
from akash_nb._replay import cassettes, in_tab, loopback

ROOT = Path(__file__).resolve().parents[1]
RECORDINGS = ROOT / "recordings"
sys.path.insert(0, str(ROOT / "browser" / "httpx2_jsfetch"))  # the transport's Call and Reply are plain
from httpx2_jsfetch import Call  # noqa: E402

PLAIN = json.loads((RECORDINGS / "02ed62539b9ec0d2.json").read_text())
STREAM = json.loads((RECORDINGS / "ef37ff092237df33.json").read_text())


def _raw(recording: dict) -> bytes:
    return json.dumps(recording["request"]["body"]).encode()


def test_a_recorded_request_gets_its_recorded_answer():
    found = cassettes.Recordings(RECORDINGS).answer("POST", "/v1/chat/completions", _raw(PLAIN))
    assert isinstance(found, cassettes.Answer) and found.status == 200 and found.events is None
    assert json.loads(found.body) == PLAIN["response"]["body"]


def test_a_recorded_stream_is_sent_one_event_a_chunk():
    found = cassettes.Recordings(RECORDINGS).answer("POST", "/v1/chat/completions", _raw(STREAM))
    assert isinstance(found, cassettes.Answer) and found.events == tuple(STREAM["response"]["events"])
    chunks = list(found.chunks())
    assert len(chunks) == len(STREAM["response"]["events"]) and chunks[-1] == b"data: [DONE]\n\n"
    assert ("Content-Type", "text/event-stream") in found.headers()


def test_a_miss_is_replay_s_own_404_naming_what_was_asked():
    recordings = cassettes.Recordings(RECORDINGS)
    body = {"model": "m", "temperature": 1, "messages": [{"role": "user", "content": "never asked"}]}
    first = recordings.answer("POST", "/v1/chat/completions", json.dumps(body).encode())
    again = recordings.answer("POST", "/v1/chat/completions", json.dumps(body).encode())
    assert isinstance(first, cassettes.Answer) and first.status == 404 and first.own_error
    assert json.loads(first.body)["error"]["type"] == "no_recording"
    assert '"never asked"' in json.loads(first.body)["error"]["message"]
    assert "asked 2 times" in json.loads(again.body)["error"]["message"]  # type: ignore[union-attr]
    assert ("x-should-retry", "false") in first.headers()


def test_a_body_that_is_not_json_is_a_400():
    found = cassettes.Recordings(RECORDINGS).answer("POST", "/v1/chat/completions", b"{not json")
    assert isinstance(found, cassettes.Answer) and found.status == 400


def test_an_answer_that_outlasted_the_timeout_waits_past_it(tmp_path):
    request = {"method": "POST", "path": "/v1/chat/completions", "body": {"model": "m", "temperature": 0}}
    response = {"status": 200, "content_type": "application/json", "body": {"id": "x"}}
    cassettes.write_recording(tmp_path, {"request": request, "response": response, "meta": {"seconds": 5}})
    raw = json.dumps(request["body"]).encode()
    assert cassettes.Recordings(tmp_path).answer("POST", request["path"], raw, timeout=1).wait == 1.2
    assert cassettes.Recordings(tmp_path).answer("POST", request["path"], raw, timeout=10).wait == 0


def test_a_record_mode_forwards_what_it_does_not_replay(tmp_path):
    found = cassettes.Recordings(tmp_path).answer("POST", "/v1/models", b"", replays=lambda recording: False)
    assert isinstance(found, cassettes.Forward) and found.name == found.request.key


def test_the_tab_answers_exactly_as_the_loopback_server(monkeypatch):
    """One code path: in_tab.replay_reply (the tab's answer) and ReplayServer (the loopback one) send the
    same status and bytes for the same request."""
    monkeypatch.setenv(cassettes.FOLDER_ENV, str(RECORDINGS))
    server = loopback.ReplayServer(RECORDINGS, "replay", None)
    try:
        for recording in (PLAIN, STREAM):
            sent = urllib.request.Request(
                f"{server.base_url.removesuffix('/v1')}/v1/chat/completions",
                data=_raw(recording),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(sent) as answered:
                over_loopback = answered.read()
            call = Call("POST", f"{browser.REPLAY_URL}/chat/completions", {}, _raw(recording), None)
            reply = in_tab.replay_reply(call)
            assert reply.status == 200 and b"".join(reply.chunks) == over_loopback
    finally:
        server.close()


def test_a_key_other_than_the_handed_out_one_is_keyed_apart(monkeypatch):
    monkeypatch.setenv(cassettes.FOLDER_ENV, str(RECORDINGS))
    headers = {"authorization": "Bearer sk-wrong"}
    call = Call("POST", f"{browser.REPLAY_URL}/chat/completions", headers, _raw(PLAIN), None)
    assert in_tab.replay_reply(call).status == 404  # not the recording made with the handed-out key


def test_the_site_root_is_cut_at_the_kernel_s_folder(monkeypatch):
    monkeypatch.delenv(browser.SITE_ROOT_ENV, raising=False)
    worker = "http://127.0.0.1:8000/lab/x/extensions/@jupyterlite/pyodide-kernel-extension/static/w.js"
    assert browser.site_root(worker) == "http://127.0.0.1:8000/lab/x/"
    assert browser.bridge_url(worker) == "http://127.0.0.1:8000/lab/x/static/akash-nb/bridge.js"
    assert browser.site_root("http://h/a/page.html?x=1") == "http://h/a/"
    monkeypatch.setenv(browser.SITE_ROOT_ENV, "http://h/site")
    assert browser.site_root(worker) == "http://h/site/"


def test_in_a_tab_nothing_configured_means_the_in_browser_model(monkeypatch, tmp_path):
    none = tmp_path / ".env"
    assert config.resolve(environ={}, dotenv_path=none).provider.name == "local"
    monkeypatch.setattr(config, "IN_BROWSER", True)
    settings = config.resolve(environ={}, dotenv_path=none)
    assert settings.provider.name == "browser" and settings.base_url == browser.MODEL_URL


def test_in_a_tab_replay_is_answered_there_and_starts_no_server(monkeypatch):
    monkeypatch.setattr(browser, "IN_BROWSER", True)
    monkeypatch.setenv("AKASH_NB_PROVIDER", "replay")
    monkeypatch.setenv(cassettes.FOLDER_ENV, str(RECORDINGS))
    before = dict(loopback._servers)
    conn, _ = _clients._resolve()
    assert conn.base_url == browser.REPLAY_URL and conn.detail.endswith("answered in this tab")
    assert loopback._servers == before


def test_the_in_browser_model_banner_says_where_it_runs(monkeypatch):
    monkeypatch.setenv("AKASH_NB_PROVIDER", "browser")
    conn, key = _clients._resolve()
    assert conn.describe() == f"in-browser model ({browser.MODEL_SHOWN})"
    assert conn.base_url == browser.MODEL_URL and key == _clients.NO_KEY


@pytest.mark.parametrize(
    "start",
    [lambda: generated_code.run_tests("x = 1", "assert x == 1"), embedded.ensure_server],
    ids=["code.run_tests", "local.ensure_server"],
)
def test_in_a_tab_what_starts_a_process_is_one_sentence(monkeypatch, start):
    monkeypatch.setattr(browser, "IN_BROWSER", True)
    with pytest.raises(LocalServerError) as raised:
        start()
    assert "cannot run in a browser tab" in raised.value.sentence and "(make lab)" in raised.value.sentence


class _Shell:
    def __init__(self) -> None:
        self.user_ns: dict[str, object] = {"__session__": "/drive/07-failures-and-cost.ipynb"}


def test_a_cell_that_starts_a_thread_and_the_names_it_would_have_made_are_sentences():
    guard = browser.CellGuard()
    shell = _Shell()
    guard.source = "import threading\nlimiter = make()\nthreading.Thread(target=f).start()\nlimited = 1\n"
    said = guard.sentence(RuntimeError("can't start new thread"), shell)  # type: ignore[arg-type]
    assert said == (
        "This cell starts a thread, which a browser tab cannot: run lesson 07 locally (make lab) to see it."
    )
    missing = NameError("name 'limited' is not defined", name="limited")
    assert "uses limited" in (guard.sentence(missing, shell) or "")  # type: ignore[arg-type]
    own = NameError("name 'typo' is not defined", name="typo")
    assert guard.sentence(own, shell) is None  # type: ignore[arg-type]  # the learner's own NameError
    assert guard.sentence(ValueError("x"), shell) is None  # type: ignore[arg-type]


def test_a_cell_that_runs_a_process_is_a_sentence():
    error = OSError(138, "emscripten does not support processes.")
    said = browser.CellGuard().sentence(error, _Shell())  # type: ignore[arg-type]
    assert said is not None and "starts a process" in said
