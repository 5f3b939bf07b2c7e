"""The class server (`akash-nb serve --share`): the engine for a room, its key, the block the teacher's
terminal shows and the live status line (a student's way in, `akash-nb join`, is akash_nb._engine.join)."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import math
import secrets
import shutil
import signal
import string
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TextIO

from .._core import in_browser
from .._core.api_key import Secret
from .._core.exceptions import engine_error
from . import builds as engines
from . import llama_server
from . import weights as models
from .embedded import state_dir
from .join import env_settings
from .llama_server import READY_TIMEOUT, port_in_use
from .weights import model_name

SHARE_HOST = "0.0.0.0"  # every address of this machine: the room's network
SHARE_PORT = 8080  # llama.cpp's own default port
# Measured with benchmarks/room.py (docs/teaching.md): a room of 30 running the same cell never waits for a
# slot; each slot's KV cache is its own (a unified one makes every step attend over every student's
# tokens: a room of 30 ran at 32 tokens/s against 48 split); SHARE_SLOT_CONTEXT is 4× the lessons' longest
# request.
SHARE_SLOTS = 32
SHARE_SLOT_CONTEXT = 2048  # tokens per slot: 32 slots hold about 1.6 GB, as 16 of 4096 did
SHARE_UNIFIED = False
SHARE_CACHE_RAM = 256  # MiB of finished prompts kept for any slot to reuse (a cell run twice)
# The answer's cap when a call sets no max_tokens (lessons 01 and 02's guide calls): 30 answers share the
# engine's 50-60 tokens/s on 2 busy cores, so 64 each ends the room's cell in 30 s (128: 70 s).
SHARE_ANSWER_TOKENS = 64
SHARE_HTTP_THREADS = 128  # connections served at once: each streamed answer holds one until it ends
STATUS_EVERY = 1.0  # seconds between two readings of /metrics
KEY_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Shared:
    """A class server running in this process's foreground (what `start_share()` starts)."""

    process: subprocess.Popen[bytes]
    port: int
    key: Secret
    model: str
    slots: int
    log: Path
    host: str = SHARE_HOST
    answer_tokens: int = SHARE_ANSWER_TOKENS

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/v1"


def start_share(
    port: int = SHARE_PORT,
    slots: int = SHARE_SLOTS,
    host: str = SHARE_HOST,
    timeout: float = READY_TIMEOUT,
    *,
    unified: bool = SHARE_UNIFIED,
    cache_ram: int = SHARE_CACHE_RAM,
    answer_tokens: int = SHARE_ANSWER_TOKENS,
) -> Shared:
    """Start a class server (see `share`) and wait until it answers; the caller stops it (`stop_share`)."""
    in_browser.refuse("A class server (llama.cpp's server, a process listening on the network)")
    if slots < 1:
        raise engine_error("slots-invalid", slots=slots)
    path = models.ensure()
    engine = engines.ensure()
    if port_in_use(port, host):
        raise engine_error("class-port-in-use", port=port, host=host)
    key = Secret(new_key())
    log = state_dir() / f"share-{port}.log"
    process = llama_server.start(
        engine,
        path,
        port,
        host=host,
        slots=slots,
        key=key,
        key_file=state_dir() / f"share-{port}.key",
        log=log,
        timeout=timeout,
        answer_tokens=answer_tokens,
        unified=unified,
        cache_ram=cache_ram,
        context=slots * SHARE_SLOT_CONTEXT,
        http_threads=max(SHARE_HTTP_THREADS, 2 * slots),
    )
    return Shared(process, port, key, model_name(path), slots, log, host, answer_tokens)


def new_key() -> str:
    """A class key: 22 letters and digits (130 bits), short enough to type off a projector, and never
    starting with "-", which `akash-nb join URL KEY` would take for an option."""
    return "".join(secrets.choice(KEY_ALPHABET) for _ in range(22))


def stop_share(shared: Shared) -> None:
    llama_server.end(shared.process)


def metrics_values(text: str) -> dict[str, float]:
    """llama-server's /metrics text as numbers, by name without the `llamacpp:` prefix."""
    values = {}
    for line in text.splitlines():
        if line.startswith("llamacpp:") and " " in line:
            name, value = line.split()[:2]
            with contextlib.suppress(ValueError):
                number = float(value)
                if math.isfinite(number):  # "inf" or "nan" from a server would break the status line
                    values[name.removeprefix("llamacpp:")] = number
    return values


# --- what the teacher's terminal shows ---------------------------------------------------------------------


def addresses(host: str = SHARE_HOST) -> list[tuple[str, str]]:
    """(interface, IPv4 address) pairs students can reach a server listening on `host` at.

    For 0.0.0.0, every address of this machine's network interfaces but loopback (or loopback alone when
    the machine has no other); for any other host, that host."""
    if host not in ("0.0.0.0", ""):
        return [("", host)]
    import psutil  # the teacher's set (the `local` extra): students never run this

    found = [
        (name, entry.address)
        for name, entries in sorted(psutil.net_if_addrs().items())
        for entry in entries
        if entry.family.name == "AF_INET" and not entry.address.startswith("127.")
    ]
    return found or [("loopback: this machine has no network address", "127.0.0.1")]


def env_lines(url: str, key: str) -> list[str]:
    """The `.env` lines that point a student's lessons at a class server."""
    return [f"{name}={value}" for name, value in env_settings(url, key).items()]


def qr_code(text: str, *, unicode: bool = True) -> str:
    """`text` as a QR code drawn with characters (two rows of modules per line when `unicode`)."""
    import segno  # the teacher's set (the `local` extra): students never run this

    out = io.StringIO()
    # Error correction L: the smallest code for ~130 characters; a phone reads it off a projected screen.
    segno.make(text, error="l", boost_error=False).terminal(out=out, compact=unicode, border=2)
    return out.getvalue().rstrip("\n")


def join_line(url: str, key: str) -> str:
    """The one command a student types: `make join URL=... KEY=...`."""
    return f"make join URL={url} KEY={key}"


def announcement(
    shared: Shared,
    found: list[tuple[str, str]] | None = None,
    *,
    unicode: bool = True,
    height: int | None = None,
) -> str:
    """The block the teacher's terminal shows once the class server answers: the URL for each network,
    the key, the join line and the `.env` lines, the last thing on screen; above them a QR code of the
    `.env` lines when the screen is `height` lines or more (always, when `height` is None: a log)."""
    found = addresses(shared.host) if found is None else found
    key = shared.key.reveal()
    url = shared.url(found[0][1])
    answers = "answers" if shared.slots != 1 else "answer"
    text = [
        f"Class server: {shared.model}, {shared.slots} {answers} at a time (more wait in line).",
        f'A call without max_tokens stops at {shared.answer_tokens} tokens, with finish_reason "length".',
        *(f"  {shared.url(address):<34}{name}".rstrip() for name, address in found),
        f"Key: {key}",
        "Students, in the lessons' folder, run:",
        f"  {join_line(url, key)}",
        *(["  (from another network above, use its URL instead)"] if len(found) > 1 else []),
        "or put these lines in a file named .env there, then run `make lab`:",
        *(f"  {line}" for line in env_lines(url, key)),
        "Plain HTTP: use it on a network you trust. Ctrl-C stops it.",
    ]
    code = qr_code("\n".join(env_lines(url, key)), unicode=unicode).splitlines()
    # The starting line above the block and the status line below it take two more lines.
    if height is None or len(code) + len(text) + 2 <= height:
        return "\n".join([*code, *text])
    tall = len(code) + len(text) + 2
    return "\n".join([f"(A QR code of the .env lines shows in a terminal of {tall} lines or more.)", *text])


RATE_WINDOW = 10.0  # seconds of tokens/s: a steady figure, not one step's spike


@dataclass
class Status:
    """The live status line, read from the engine: slots busy (/slots), requests waiting (/metrics),
    tokens/s over the last RATE_WINDOW seconds, and how many students' machines have reached it."""

    shared: Shared
    joined: set[str] = field(default_factory=set)
    _before: set[tuple[str, int]] = field(default_factory=set)  # the server's own readiness checks
    _own: set[int] = field(default_factory=set)  # this reader's ports: not a student
    _tokens: deque[tuple[float, float]] = field(default_factory=deque)
    _connection: http.client.HTTPConnection | None = None

    def __post_init__(self) -> None:
        self._before = self._connections()

    def _get(self, path: str) -> bytes:
        """One GET on a kept-alive connection (each new one is a port of ours, not a student's)."""
        if self._connection is None:
            self._connection = http.client.HTTPConnection("127.0.0.1", self.shared.port, timeout=5)
            self._connection.connect()
            self._own.add(self._connection.sock.getsockname()[1])
        try:
            self._connection.request(
                "GET", path, headers={"Authorization": f"Bearer {self.shared.key.reveal()}"}
            )
            response = self._connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self._connection.close()
            self._connection = None
            raise
        if response.status != 200:
            raise OSError(f"{path} answered {response.status}")
        return body

    def _connections(self) -> set[tuple[str, int]]:
        """(address, port) of every client connection to the server: open, or closed by the server in the
        last minute (TIME_WAIT), which is how a short request such as `akash-nb join`'s is still seen."""
        import psutil  # the teacher's set (the `local` extra)

        try:
            found = [(c.laddr, c.raddr, c.status) for c in psutil.net_connections(kind="tcp")]  # closed too
        except psutil.AccessDenied:  # macOS without root: the engine's own open connections only
            engine = psutil.Process(self.shared.process.pid)
            found = [(c.laddr, c.raddr, c.status) for c in engine.net_connections(kind="tcp")]
        return {
            (remote.ip, remote.port)
            for local, remote, state in found
            if remote and local and local.port == self.shared.port and state != psutil.CONN_LISTEN
        }

    def read(self) -> dict[str, float]:
        """Read the engine's /slots and /metrics and who has connected; returns the line's numbers."""
        import psutil  # the teacher's set (the `local` extra)

        slots = json.loads(self._get("/slots"))
        if not isinstance(slots, list):
            raise ValueError("/slots is not a list")  # the next reading will do
        values = metrics_values(self._get("/metrics").decode())
        now = time.monotonic()
        # tokens_predicted_total counts an answer when it ends; busy slots per decode × decodes counts each
        # token as it is made (the two agree once the answers are done)
        made = values.get("n_decode_total", 0.0) * values.get("n_busy_slots_per_decode", 0.0)
        self._tokens.append((now, max(made, values.get("tokens_predicted_total", 0.0))))
        while now - self._tokens[0][0] > RATE_WINDOW:
            self._tokens.popleft()
        with contextlib.suppress(psutil.Error):
            for address, port in self._connections() - self._before:
                if port not in self._own or not address.startswith("127."):
                    self.joined.add(address)
        (first, before), (last, tokens) = self._tokens[0], self._tokens[-1]
        return {
            "busy": sum(1 for slot in slots if isinstance(slot, dict) and slot.get("is_processing") is True),
            "waiting": values.get("requests_deferred", 0.0),
            "rate": (tokens - before) / (last - first) if last > first else 0.0,
        }

    def line(self, values: dict[str, float]) -> str:
        return (
            f"slots busy {int(values['busy'])}/{self.shared.slots} | waiting {int(values['waiting'])} | "
            f"{values['rate']:.0f} tokens/s | joined {len(self.joined)}"
        )

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


class Ended(BaseException):
    """A signal (Ctrl-C, SIGTERM, SIGHUP, Ctrl-Break) asked the class server to end.

    Not a KeyboardInterrupt itself: CPython 3.11 run with `-m` then sometimes took the caught interrupt
    for an unhandled one and ended the process by SIGINT (exit -2) after it had stopped cleanly."""


def _interrupt(number: int, frame: FrameType | None) -> None:
    raise Ended


def share(
    port: int = SHARE_PORT, slots: int = SHARE_SLOTS, host: str = SHARE_HOST, out: TextIO | None = None
) -> None:
    """Serve the embedded model (or AKASH_NB_LOCAL_MODEL) to the room, in this process, until interrupted.

    A new key is made and shown with what students set; it is never written to the state file."""
    in_browser.refuse("A class server (llama.cpp's server, a process listening on the network)")
    out = sys.stdout if out is None else out
    # A closed terminal (SIGHUP) or a `kill` (SIGTERM) ends the class server too, as Ctrl-C does: never
    # leave llama-server listening on the room's network with nobody watching it. Windows has no SIGHUP:
    # Ctrl-Break (SIGBREAK) is caught as Ctrl-C is, and a closed console window ends the engine with it,
    # since it shares that console (llama_server.detached gives it a process group, not a console of its own).
    for number in (
        signal.SIGINT,
        signal.SIGTERM,
        getattr(signal, "SIGHUP", None),
        getattr(signal, "SIGBREAK", None),
    ):
        if number is not None:
            signal.signal(number, _interrupt)
    terminal = out.isatty()
    unicode = (getattr(out, "encoding", None) or "").lower().replace("-", "") == "utf8"
    print(
        f"Starting the class server on port {port} (engine log: {state_dir() / f'share-{port}.log'}) ...",
        file=out,
        flush=True,
    )
    shared = start_share(port, slots, host)
    status = None
    try:
        height = shutil.get_terminal_size().lines if terminal else None
        print(announcement(shared, unicode=unicode, height=height), file=out, flush=True)
        status, shown = Status(shared), ""
        while shared.process.poll() is None:
            with contextlib.suppress(OSError, ValueError, http.client.HTTPException):  # the next will do
                line = status.line(status.read())
                if terminal:  # one line, rewritten in place
                    print(f"\r{line}  ", end="", file=out, flush=True)
                elif line != shown:  # a log: a line each time something changed
                    print(line, file=out, flush=True)
                    shown = line
            time.sleep(STATUS_EVERY)
        raise engine_error("class-server-exited", code=shared.process.returncode, log=shared.log)
    finally:
        if terminal:
            print(file=out)
        if status is not None:
            status.close()
        stop_share(shared)
