"""The recordings' format: one JSON file per request, named by a hash of the request (never a header
or key), read and checked, counted when a request repeats, and one folder answering one request
(`Recordings`: used by the loopback server, and by a browser tab without any server)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._core.files import read_text, write_atomically

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


def outlasted_wait(recording: dict[str, Any], timeout: float | None) -> float:
    """Replay answers at once, so a client's timeout shorter than the recorded answer took would never
    fire: when the recording says the real answer outlasted a timeout (meta "seconds"), and this request's
    `timeout` is shorter, the seconds to wait past it as the real server did (lesson 07's tiny timeout)."""
    meta = recording.get("meta")
    seconds = meta.get("seconds") if isinstance(meta, dict) else None  # a hostile file's meta is anything
    if isinstance(seconds, (int, float)) and timeout is not None and timeout < seconds:
        return float(min(seconds, timeout + 0.2))
    return 0.0
