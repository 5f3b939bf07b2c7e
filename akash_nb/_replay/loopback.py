"""The loopback server that replays (or records) what a real provider said, and the upstreams record mode
forwards to; the recordings themselves are `cassettes`."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .._core import config, untrusted
from .._core.api_key import Secret
from .._core.exceptions import config_error
from .._core.files import ensure_folder
from .._engine import embedded
from .cassettes import (
    DEFAULT_UPSTREAM,
    EVENT_STREAM,
    FOLDER_ENV,
    HANDED_OUT_KEY,
    KEY_ERRORS,
    MODE_ENV,
    MODES,
    RECORD_COMMAND,
    RECORDED_ERRORS,
    UPSTREAM_ENV,
    UPSTREAM_TIMEOUT,
    Answer,
    Forward,
    Recordings,
    Request,
    describe_recordings,
    note_use,
    recordings_folder,
    shown_folder,
    write_recording,
)

# --- upstreams ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """Where record mode forwards to. `label` goes into meta; the key never goes anywhere but upstream."""

    label: str
    base_url: str  # ends in /v1 (or wherever the API's paths start)
    key: Secret | None
    model: str | None = None  # the model that answers, when known better than the response says

    def url(self, path: str) -> str:
        # Our own paths start with /v1 (the client's base_url); the upstream's base_url already has it.
        return self.base_url.rstrip("/") + (path[3:] if path.startswith("/v1/") else path)


def _local_upstream() -> Upstream:
    server = embedded.ensure_server()
    return Upstream("local", server.base_url, server.key, server.model)


def _akashml_upstream() -> Upstream:
    settings = config.resolve("akashml")
    return Upstream("akashml", settings.base_url or "", settings.api_key)


def _url_upstream(url: str) -> Upstream:
    settings = config.resolve("openai-compatible", base_url=url)
    base = settings.base_url or url
    return Upstream(urlparse(base).netloc, base, settings.api_key)


UPSTREAMS: dict[str, Callable[[], Upstream]] = {
    "local": _local_upstream,
    "akashml": _akashml_upstream,
}


def upstream_spec(spec: str | None = None) -> str:
    """Which upstream records: `spec`, else AKASH_NB_RECORD_UPSTREAM, else `local`."""
    return (spec or os.environ.get(UPSTREAM_ENV, "") or DEFAULT_UPSTREAM).strip()


def resolve_upstream(spec: str | None = None) -> Upstream:
    """The upstream `upstream_spec(spec)` names: a name in UPSTREAMS or an http(s) URL."""
    spec = upstream_spec(spec)
    if spec.lower() in UPSTREAMS:
        return UPSTREAMS[spec.lower()]()
    if spec.startswith(("http://", "https://")):
        return _url_upstream(spec)
    raise config_error("unknown-upstream", spec=repr(spec))


# --- the server -----------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive for the SDK's connection pool
    server: _HTTPServer

    def do_GET(self) -> None:
        self.server.replay.answer(self)

    do_POST = do_GET
    do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # an access log would land in the notebook cell's output

    # -- writing answers

    def send_json(
        self, status: int, body: Any, content_type: str = "application/json", own_error: bool = False
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if own_error:
            self.send_header("x-should-retry", "false")  # asking again cannot help
        self.end_headers()
        self.wfile.write(data)

    def start_events(self) -> None:
        """Begin a real SSE answer; each `send_event` is one chunk, flushed at once."""
        self.send_response(200)
        self.send_header("Content-Type", EVENT_STREAM)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def send_event(self, data: str) -> None:
        chunk = f"data: {data}\n\n".encode()
        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.flush()

    def end_events(self) -> None:
        with contextlib.suppress(OSError):  # the SDK may have hung up already, having read [DONE]
            self.wfile.write(b"0\r\n\r\n")

    def send_own_error(self, status: int, kind: str, sentence: str) -> None:
        self.send_answer(Answer.own(status, kind, sentence))

    def send_answer(self, answer: Answer) -> None:
        if answer.events is None:
            self.send_json(answer.status, answer.body, answer.content_type, own_error=answer.own_error)
            return
        self.start_events()
        for data in answer.events:
            self.send_event(data)
        self.end_events()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    replay: ReplayServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr, which in a kernel lands in the cell's output. A client
        # that hangs up is normal; anything else is a bug worth seeing.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ReplayServer:
    """One loopback server for one folder and mode. Start it with `ensure_server()`."""

    def __init__(self, folder: Path, mode: str, upstream: Upstream | None) -> None:
        self.folder = folder
        self.mode = mode
        self.upstream = upstream
        self.recordings = Recordings(folder)
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.replay = self
        # poll_interval 0.1 s: close() returns quickly; the cost is ten idle wake-ups a second.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.1,), name=f"akash-nb replay {folder}", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def describe_source(self) -> str:
        if self.upstream is not None:
            return (
                f"{self.mode} mode: forwarding to {self.upstream.label} and writing to "
                f"{shown_folder(self.folder)}"
            )
        return describe_recordings(self.folder)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        with _lock:
            for key, server in list(_servers.items()):
                if server is self:
                    del _servers[key]

    # -- answering

    def answer(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        found = self.recordings.answer(
            handler.command,
            handler.path,
            raw,
            other_key=_other_key(handler),
            timeout=_read_timeout(handler),
            replays=None if self.upstream is None else self._replays,
        )
        if isinstance(found, Forward):
            self._forward(handler, found.request, raw, found.name)
            return
        if found.wait:
            time.sleep(found.wait)
        handler.send_answer(found)

    def miss_sentence(self, request: Request, occurrence: int = 1) -> str:
        return self.recordings.miss_sentence(request, occurrence)

    def _replays(self, recording: dict[str, Any]) -> bool:
        """Whether this record mode answers from `recording` rather than asking the upstream."""
        assert self.upstream is not None
        if self.mode == "record":
            return bool(recording.get("meta", {}).get("upstream") == self.upstream.label)
        return False

    # -- recording

    def _forward(self, handler: _Handler, request: Request, raw: bytes, name: str) -> None:
        assert self.upstream is not None
        headers = {
            "Content-Type": "application/json",
            "Accept": handler.headers.get("Accept", "application/json"),
        }
        if request.other_key:
            headers["Authorization"] = handler.headers.get("Authorization", "")  # let the upstream judge it
        elif self.upstream.key is not None:
            headers["Authorization"] = f"Bearer {self.upstream.key.reveal()}"
        started = time.monotonic()
        outgoing = urllib.request.Request(
            self.upstream.url(request.path), data=raw or None, headers=headers, method=request.method
        )
        try:
            response = untrusted.urlopen(outgoing, timeout=UPSTREAM_TIMEOUT)  # no key to another origin
        except urllib.error.HTTPError as error:
            response = error  # an answer all the same: status, headers and body
        except (urllib.error.URLError, OSError) as error:
            handler.send_own_error(
                502,
                "upstream_unreachable",
                f"Recording could not reach {self.upstream.label} at "
                f"{untrusted.shown_url(self.upstream.base_url)} ({untrusted.shown(error, 200)}); start it, "
                "or choose another "
                "upstream (--upstream).",
            )
            return
        with response:
            status = response.status
            content_type = response.headers.get("Content-Type", "application/json")
            if status == 200 and content_type.startswith(EVENT_STREAM):
                self._relay_events(handler, request, name, response)
            else:
                data = response.read()
                seconds = time.monotonic() - started
                timeout = _read_timeout(handler)
                outlasted = seconds if timeout is not None and timeout < seconds else None
                self._relay_body(handler, request, name, status, content_type, data, outlasted)

    # The recording is on disk before the client has the whole answer: the kernel may be killed after it.

    def _relay_body(
        self,
        handler: _Handler,
        request: Request,
        name: str,
        status: int,
        content_type: str,
        data: bytes,
        outlasted: float | None,
    ) -> None:
        if 200 <= status < 300 or status in RECORDED_ERRORS or (request.other_key and status in KEY_ERRORS):
            try:
                body = json.loads(data)
            except ValueError:
                body = None  # not JSON: passed through, not recorded
            if body is not None:
                model = body.get("model") if isinstance(body, dict) else None
                self._write(
                    request,
                    name,
                    {"status": status, "content_type": "application/json", "body": body},
                    model,
                    outlasted,
                )
        handler.send_json(status, data, content_type)

    def _relay_events(self, handler: _Handler, request: Request, name: str, response: Any) -> None:
        """Relay the stream live, event by event; record it when [DONE] arrives, before passing that on
        (the SDK closes the connection as soon as it reads [DONE])."""
        events: list[str] = []
        handler.start_events()
        try:
            for data in _sse_data(response):
                events.append(data)
                if data == "[DONE]":
                    self._write(
                        request,
                        name,
                        {"status": 200, "content_type": EVENT_STREAM, "events": events},
                        _stream_model(events),
                    )
                handler.send_event(data)
        except OSError:
            return  # the client or the upstream went away mid-stream: nothing complete to keep
        handler.end_events()

    def _write(
        self,
        request: Request,
        name: str,
        response: dict[str, Any],
        model: str | None,
        outlasted: float | None = None,
    ) -> None:
        assert self.upstream is not None
        meta: dict[str, Any] = {
            "upstream": self.upstream.label,
            "model": self.upstream.model or model,
            "recorded": datetime.date.today().isoformat(),
        }
        if outlasted is not None:  # the client's timeout fired first: replay must outlast it too
            meta["seconds"] = round(outlasted, 2)
        self.folder.mkdir(parents=True, exist_ok=True)
        write_recording(self.folder, {"request": request.to_json(), "response": response, "meta": meta}, name)
        note_use(name, "written")


def _other_key(handler: _Handler) -> bool:
    sent = handler.headers.get("Authorization", "")
    return bool(sent) and sent != f"Bearer {HANDED_OUT_KEY}"


TIMEOUT_HEADER = "x-stainless-read-timeout"  # the SDK sends its read timeout, in seconds, on each request


def _read_timeout(handler: _Handler) -> float | None:
    try:
        return float(handler.headers.get(TIMEOUT_HEADER, ""))
    except ValueError:
        return None


def _sse_data(response: Any) -> Iterator[str]:
    """The data of each server-sent event, read line by line as the upstream sends it."""
    lines: list[str] = []
    for raw in iter(response.readline, b""):
        line = raw.decode("utf-8").rstrip("\r\n")
        if line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
        elif not line and lines:
            yield "\n".join(lines)
            lines = []
        # comments (":"), "event:", "id:" and "retry:" lines carry nothing the SDK's chat stream reads
    if lines:
        yield "\n".join(lines)


def _stream_model(events: list[str]) -> str | None:
    for data in events:
        try:
            chunk = json.loads(data)
        except ValueError:
            continue
        if isinstance(chunk, dict) and chunk.get("model"):
            return str(chunk["model"])
    return None


# --- one server per folder and mode, per process --------------------------------------------------------

_lock = threading.Lock()
_servers: dict[tuple[Path, str, str | None], ReplayServer] = {}


def resolve_mode(mode: str | None = None) -> str:
    """`mode`, else AKASH_NB_REPLAY_MODE, else `replay`."""
    chosen = (mode or os.environ.get(MODE_ENV, "") or "replay").strip().lower()
    if chosen not in MODES:
        where = "argument" if mode else MODE_ENV
        raise config_error("unknown-replay-mode", mode=repr(chosen), where=where, modes=", ".join(MODES))
    return chosen


def ensure_server(
    folder: Path | None = None, *, mode: str | None = None, upstream: str | None = None
) -> ReplayServer:
    """This process's replay server for `folder` (see `recordings_folder`), started on first use.

    In replay mode a missing folder is a ConfigError; in the record modes it is created, and the upstream
    (see `resolve_upstream`) is resolved now, so a missing key fails here and not in the middle of a cell.
    """
    where = recordings_folder(folder)
    chosen = resolve_mode(mode)
    spec = None if chosen == "replay" else upstream_spec(upstream)
    with _lock:
        server = _servers.get((where, chosen, spec))
        if server is not None:
            return server
        if chosen == "replay":
            if os.path.lexists(where) and not where.is_dir():
                raise config_error("recordings-not-folder", folder=where, variable=FOLDER_ENV)
            if not where.is_dir():
                raise config_error(
                    "recordings-missing", folder=where, command=RECORD_COMMAND, variable=FOLDER_ENV
                )
            server = ReplayServer(where, chosen, None)
        else:
            resolved = resolve_upstream(spec)
            ensure_folder(
                where,
                "The recordings folder",
                f"remove what is there, or set {FOLDER_ENV} to a folder you can write",
                writable=True,
            )
            server = ReplayServer(where, chosen, resolved)
        _servers[(where, chosen, spec)] = server
        return server
