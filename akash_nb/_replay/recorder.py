"""Recorded answers: a loopback HTTP server that replays (or records) what a real provider said, one JSON
file per request."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
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
from .._core.files import ensure_folder, read_text, write_atomically
from .._engine import embedded

FOLDER_ENV = "AKASH_NB_RECORDINGS"
MODE_ENV = "AKASH_NB_REPLAY_MODE"
UPSTREAM_ENV = "AKASH_NB_RECORD_UPSTREAM"
USED_ENV = "AKASH_NB_REPLAY_USED"

MODES = ("replay", "record", "rerecord")
DEFAULT_UPSTREAM = "local"
UPSTREAM_TIMEOUT = 600.0  # seconds; a CPU model writing a long answer
RECORD_COMMAND = "make record"
# Answers about the request itself are stable and worth keeping (a lesson may show a 404); answers about
# the key (401/402/403) or the moment (408/429/5xx) are passed through but never written.
RECORDED_ERRORS = frozenset({400, 404, 422})
# The key a replay client is handed (connect.NO_KEY). A request with any other key is a learner trying a
# wrong one (lesson 07): it is recorded apart, forwarded with the key as sent, and its 401/403 is kept.
HANDED_OUT_KEY = "no-key-needed"
KEY_ERRORS = frozenset({401, 403})
EVENT_STREAM = "text/event-stream"


def repository_folder() -> Path:
    """The repository's own recordings: the top-level recordings/ beside the package (not test data: the
    lessons replay it, and the site ships it)."""
    return Path(__file__).resolve().parents[2] / "recordings"  # the repository, two above this room


def recordings_folder(folder: Path | str | None = None) -> Path:
    """Where recordings live: `folder`, else AKASH_NB_RECORDINGS, else `repository_folder()`."""
    explicit = str(folder) if folder is not None else os.environ.get(FOLDER_ENV, "").strip()
    if not explicit:
        return repository_folder()
    try:
        return Path(explicit).expanduser().resolve()
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13): said when used
        return Path(os.path.abspath(Path(explicit).expanduser()))


def shown_folder(folder: Path) -> str:
    """The folder as a user should read it: relative to the repository when inside it."""
    try:
        return str(folder.relative_to(repository_folder().parent))
    except ValueError:
        return str(folder)


# --- requests and their keys ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """A request as it is keyed and written: no headers."""

    method: str
    path: str
    body: Any  # the parsed JSON body; None when there is none
    other_key: bool = False  # sent with a key that is not HANDED_OUT_KEY (never the key itself)

    @classmethod
    def parse(cls, method: str, path: str, raw: bytes, other_key: bool = False) -> Request:
        """Raises ValueError when the body is not JSON."""
        return cls(method.upper(), path, json.loads(raw) if raw.strip() else None, other_key)

    @property
    def key(self) -> str:
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @classmethod
    def from_json(cls, shown: dict[str, Any]) -> Request:
        return cls(shown["method"], shown["path"], shown.get("body"), "key" in shown)

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"method": self.method, "path": self.path, "body": self.body}
        if self.other_key:  # only then: every other recording keeps its name
            shown["key"] = "not the one replay hands out"
        return shown

    @property
    def deterministic(self) -> bool:
        """No sampling involved: the same request always gets the same answer (so one recording serves
        every repeat)."""
        return not isinstance(self.body, dict) or self.body.get("temperature") == 0

    def summary(self) -> str:
        """What was asked, for a sentence: method, path, model, first words of the last user message."""
        parts = [f"{self.method} {self.path}"]
        body = self.body if isinstance(self.body, dict) else {}
        if body.get("model"):
            parts.append(f"model {body['model']}")
        words = last_user_text(body.get("messages")).split()
        if words:
            parts.append('"' + " ".join(words[:8]) + (" …" if len(words) > 8 else "") + '"')
        return ", ".join(parts)


def request_key(method: str, path: str, body: bytes | str | dict[str, Any] | None) -> str:
    """The recording's name (without .json) for a request; `body` as sent (bytes/str) or parsed."""
    if isinstance(body, str):
        body = body.encode()
    if isinstance(body, bytes):
        return Request.parse(method, path, body).key
    return Request(method.upper(), path, body).key


def last_user_text(messages: Any) -> str:
    """The text of the last user message (text parts joined when the content is a list of parts)."""
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


# --- recordings on disk ---------------------------------------------------------------------------------


def write_recording(folder: Path, recording: dict[str, Any], name: str | None = None) -> Path:
    """Write at once and atomically: a reader (or a SIGKILL) sees the old file or the new one."""
    path = folder / f"{name or Request.from_json(recording['request']).key}.json"
    text = json.dumps(recording, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    return write_atomically(path, text, mode=0o644)  # recordings are committed files


def read_recording(path: Path) -> dict[str, Any] | None:
    """The recording at `path`, None when there is none; OSError/ValueError when it cannot be read or is
    not a recording (the ValueError says which part is wrong)."""
    try:
        recording: dict[str, Any] = json.loads(read_text(path))  # a FIFO is refused, not waited on
    except FileNotFoundError:
        return None
    check_recording(recording)
    return recording


def check_recording(recording: Any) -> None:
    """A ValueError naming what is wrong unless `recording` has the shape in docs/architecture.md."""
    if not isinstance(recording, dict) or not isinstance(recording.get("response"), dict):
        raise ValueError('it is not an object with a "response" object')
    response = recording["response"]
    if "events" in response:
        events = response["events"]
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise ValueError('its "events" is not a list of strings')
        return
    status, content_type = response.get("status"), response.get("content_type")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError('its "status" is not an HTTP status')
    if not isinstance(content_type, str) or not content_type or not content_type.isprintable():
        raise ValueError('its "content_type" is not a content type')
    if "body" not in response:
        raise ValueError('it has no "body"')


def recordings(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json"))


def describe_recordings(folder: Path) -> str:
    """Which upstreams and models the recordings came from: "recorded from local: SmolLM2-135M-Instruct",
    or, when mixed, "recorded from akashml: deepseek-ai/DeepSeek-V3.2; local: SmolLM2-135M-Instruct"."""
    models: dict[str, set[str]] = {}
    for path in recordings(folder):
        try:
            data = json.loads(read_text(path))
        except (OSError, ValueError):
            continue  # said when that recording is asked for (ReplayServer.answer)
        meta = data.get("meta") if isinstance(data, dict) else None
        if not isinstance(meta, dict):
            continue
        found = models.setdefault(str(meta.get("upstream", "unknown")), set())
        if meta.get("model"):
            found.add(str(meta["model"]))
    if not models:
        return f"no recordings yet in {shown_folder(folder)}"
    return "recorded from " + "; ".join(
        upstream + (": " + ", ".join(sorted(names)) if names else "")
        for upstream, names in sorted(models.items())
    )


def note_use(key: str, outcome: str) -> None:
    """Append `<key> <outcome>` to AKASH_NB_REPLAY_USED at once (one short O_APPEND write, so lines from
    kernels running side by side do not interleave)."""
    used = os.environ.get(USED_ENV)
    if not used:
        return
    fd = os.open(used, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{key} {outcome}\n".encode())
    finally:
        os.close(fd)


# --- answering from the recordings (the loopback server and, under Pyodide, _core/in_browser.py) -----------


@dataclass(frozen=True)
class Answer:
    """What replay answers one request with: a JSON body, or the data of each server-sent event."""

    status: int
    content_type: str
    body: bytes  # empty for an event stream
    events: tuple[str, ...] | None = None  # an event stream's data, [DONE] included
    own_error: bool = False  # replay's own error (a miss): asking again cannot help
    wait: float = 0.0  # seconds to wait first: the recorded answer outlasted this request's timeout

    @classmethod
    def own(cls, status: int, kind: str, sentence: str) -> Answer:
        body = json.dumps({"error": {"type": kind, "message": sentence}}, ensure_ascii=False).encode()
        return cls(status, "application/json", body, own_error=True)

    @classmethod
    def of_recording(cls, recording: dict[str, Any], wait: float = 0.0) -> Answer:
        response = recording["response"]
        if "events" in response:
            return cls(200, EVENT_STREAM, b"", tuple(response["events"]), wait=wait)
        body = response["body"]
        data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        return cls(response["status"], response["content_type"], data, wait=wait)

    def headers(self) -> list[tuple[str, str]]:
        """The response headers the loopback server sends (without the framing ones)."""
        if self.events is not None:
            return [("Content-Type", EVENT_STREAM), ("Cache-Control", "no-store")]
        shown = [("Content-Type", self.content_type), ("Content-Length", str(len(self.body)))]
        return shown + ([("x-should-retry", "false")] if self.own_error else [])

    def chunks(self) -> Iterator[bytes]:
        """The body as the server writes it: the JSON at once, or one `data: ...` event a chunk."""
        if self.events is None:
            yield self.body
            return
        for data in self.events:
            yield f"data: {data}\n\n".encode()


@dataclass(frozen=True)
class Forward:
    """No answer in the recordings for a record mode: ask the upstream and write it as `name`."""

    request: Request
    name: str


class Recordings:
    """One folder of recordings answering requests, counting repeats (one instance per server, and one
    per folder in a browser tab)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._seen: dict[str, int] = {}  # request key -> how many times it was asked
        self._seen_lock = threading.Lock()

    def answer(
        self,
        method: str,
        path: str,
        raw: bytes,
        *,
        other_key: bool = False,
        timeout: float | None = None,
        replays: Callable[[dict[str, Any]], bool] | None = None,
    ) -> Answer | Forward:
        """The answer to one request from the recordings. `replays` is a record mode's say on whether a
        recording answers (None: replay mode, where every recording answers and a miss is an answer too)."""
        try:
            request = Request.parse(method, path, raw, other_key)
        except ValueError as error:
            return Answer.own(400, "invalid_request", f"The request body is not JSON: {error}.")
        name, occurrence = self._name(request)
        path_ = self.folder / f"{name}.json"
        try:
            recording = read_recording(path_)
        except (OSError, ValueError) as error:
            if replays is None:
                return Answer.own(
                    500,
                    "no_recording",
                    f"The recording {shown_folder(path_)} cannot be read ({error}); "
                    f"delete it and record it again with `{RECORD_COMMAND}`.",
                )
            recording = None  # recording anyway: the new answer replaces it
        if recording is not None and (replays is None or replays(recording)):
            note_use(name, "replayed" if replays is None else "reused")
            return Answer.of_recording(recording, outlasted_wait(recording, timeout))
        if replays is None:
            note_use(name, "missed")
            return Answer.own(404, "no_recording", self.miss_sentence(request, occurrence))
        return Forward(request, name)

    def _name(self, request: Request) -> tuple[str, int]:
        """The recording that answers this request: `<key>` the first time, `<key>-N` the Nth time,
        except for a deterministic request, which one recording answers every time."""
        key = request.key
        with self._seen_lock:
            occurrence = self._seen[key] = self._seen.get(key, 0) + 1
        if occurrence == 1 or request.deterministic:
            return key, occurrence
        return f"{key}-{occurrence}", occurrence

    def miss_sentence(self, request: Request, occurrence: int = 1) -> str:
        repeat = ""
        if occurrence > 1:
            # At temperature > 0 a repeat is a new sample: replay does not invent one.
            repeat = (
                f" (asked {occurrence} times; at temperature > 0 each answer is a sample, "
                "recorded separately)"
            )
        return (
            f"No recording for {request.summary()}{repeat}: record it with `{RECORD_COMMAND}` "
            f"(recordings live in {shown_folder(self.folder)})."
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


def outlasted_wait(recording: dict[str, Any], timeout: float | None) -> float:
    """Replay answers at once, so a client's timeout shorter than the recorded answer took would never
    fire: when the recording says the real answer outlasted a timeout (meta "seconds"), and this request's
    `timeout` is shorter, the seconds to wait past it as the real server did (lesson 07's tiny timeout)."""
    meta = recording.get("meta")
    seconds = meta.get("seconds") if isinstance(meta, dict) else None  # a hostile file's meta is anything
    if isinstance(seconds, (int, float)) and timeout is not None and timeout < seconds:
        return float(min(seconds, timeout + 0.2))
    return 0.0


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
