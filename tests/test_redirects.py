"""Credentials go only where they were configured: a server that redirects to another origin (here another
port of loopback) never gets the key sent there, by `akash-nb join` (urllib), by the replay server's
recording upstream (urllib) or by the SDK client from `akash_nb.client()` (httpx2).

Two real loopback servers: A answers every request with a redirect to B; B records the headers it got."""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
from faultserver import MODEL, completion

import akash_nb
from akash_nb._core.api_key import Secret
from akash_nb._engine import join
from akash_nb._replay import cassettes, loopback

pytestmark = pytest.mark.faults

STATUSES = [301, 302, 307, 308]


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:
        pass


class Recorder(_Quiet):
    """B: answers like an API, and keeps every request's headers."""

    def do_GET(self) -> None:
        self.answer(
            {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "b"}]}
        )

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer(completion("from B"))

    def answer(self, body: dict) -> None:
        self.server.seen.append({k.lower(): v for k, v in self.headers.items()})  # type: ignore[attr-defined]
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Redirector(_Quiet):
    """A: sends every request on to B, with the status the test chose."""

    def do_GET(self) -> None:
        self.redirect()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.redirect()

    def redirect(self) -> None:
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Location", self.server.target + self.path)  # type: ignore[attr-defined]
        self.send_header("Content-Length", "0")
        self.end_headers()


def _serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return httpd


@pytest.fixture
def pair() -> Iterator[tuple[ThreadingHTTPServer, ThreadingHTTPServer]]:
    a, b = _serve(Redirector), _serve(Recorder)
    b.seen = []  # type: ignore[attr-defined]
    a.target = f"http://127.0.0.1:{b.server_address[1]}"  # type: ignore[attr-defined]
    yield a, b
    for httpd in (a, b):
        httpd.shutdown()
        httpd.server_close()


def url_of(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}/v1"


def never_sent(b: ThreadingHTTPServer, key: str) -> None:
    for headers in b.seen:  # type: ignore[attr-defined]
        assert key not in json.dumps(headers), headers


@pytest.mark.parametrize("status", STATUSES)
def test_join_never_sends_the_class_key_to_another_origin(pair, status, tmp_path):
    a, b = pair
    a.status = status  # type: ignore[attr-defined]
    key = secrets.token_urlsafe(16)
    join.join(url_of(a), key, tmp_path / ".env")  # B answered, through the redirect
    assert b.seen  # type: ignore[attr-defined]
    never_sent(b, key)


@pytest.mark.parametrize("status", STATUSES)
def test_the_replay_servers_recording_upstream_never_sends_the_key_to_another_origin(pair, status, tmp_path):
    a, b = pair
    a.status = status  # type: ignore[attr-defined]
    key = secrets.token_urlsafe(16)
    recorder = loopback.ReplayServer(tmp_path, "record", loopback.Upstream("a", url_of(a), Secret(key)))
    try:
        client = openai.OpenAI(base_url=recorder.base_url, api_key=cassettes.HANDED_OUT_KEY, max_retries=0)
        with contextlib.suppress(openai.OpenAIError):  # urllib does not follow a POST's 307/308
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
        with contextlib.suppress(openai.OpenAIError):
            client.models.list()
    finally:
        recorder.close()
    assert b.seen  # type: ignore[attr-defined]
    never_sent(b, key)


@pytest.mark.parametrize("status", STATUSES)
def test_the_sdk_client_never_sends_the_key_to_another_origin(pair, status):
    a, b = pair
    a.status = status  # type: ignore[attr-defined]
    key = secrets.token_urlsafe(16)
    client = akash_nb.client(base_url=url_of(a), api_key=key, show=False, max_retries=0, timeout=5)
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert b.seen  # type: ignore[attr-defined]  # the SDK followed the redirect to B
    never_sent(b, key)
