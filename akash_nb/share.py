"""The class server (`akash-nb serve --share`) and a student's way in to it (`akash-nb join URL KEY`)."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TextIO
from urllib.parse import urlparse

from dotenv import set_key

from . import config, llama_server
from . import engine as engines
from . import model as models
from .exceptions import ConfigError, LocalServerError
from .llama_server import READY_TIMEOUT, list_models, port_in_use
from .local import state_dir
from .model import model_name
from .secret import Secret

SHARE_HOST = "0.0.0.0"  # every address of this machine: the room's network
SHARE_PORT = 8080  # llama.cpp's own default port
SHARE_SLOTS = 16  # measured on 2 cores: 16 at once streams ~2x one user's rate; a room of 30 queues
STATUS_EVERY = 1.0  # seconds between two readings of /metrics
JOIN_TIMEOUT = 10.0


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

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/v1"


def start_share(
    port: int = SHARE_PORT, slots: int = SHARE_SLOTS, host: str = SHARE_HOST, timeout: float = READY_TIMEOUT
) -> Shared:
    """Start a class server (see `share`) and wait until it answers; the caller stops it (`stop_share`)."""
    if slots < 1:
        raise LocalServerError(f"--slots is {slots}; it must be at least 1.")
    path = models.ensure()
    engine = engines.ensure()
    if port_in_use(port, host):
        raise LocalServerError(f"Port {port} on {host} is already in use; pick another with --port.")
    key = Secret(secrets.token_urlsafe(24))
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
    )
    return Shared(process, port, key, model_name(path), slots, log, host)


def stop_share(shared: Shared) -> None:
    llama_server.end(shared.process)


def share_status(shared: Shared) -> dict[str, float]:
    """llama-server's /metrics as numbers: requests_processing (slots busy), requests_deferred (waiting in
    line), tokens_predicted_total, ..."""
    request = urllib.request.Request(
        shared.url().removesuffix("/v1") + "/metrics",
        headers={"Authorization": f"Bearer {shared.key.reveal()}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("llamacpp:") and " " in line:
            name, value = line.split()[:2]
            with contextlib.suppress(ValueError):
                values[name.removeprefix("llamacpp:")] = float(value)
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


def env_settings(url: str, key: str) -> dict[str, str]:
    """What a student's .env sets to use a class server; the provider makes it win over an AkashML key."""
    return {"AKASH_NB_PROVIDER": "openai-compatible", "AKASH_NB_BASE_URL": url, "AKASH_NB_API_KEY": key}


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


def announcement(shared: Shared, found: list[tuple[str, str]] | None = None, *, unicode: bool = True) -> str:
    """The short block the teacher's terminal shows once the class server answers."""
    found = addresses(shared.host) if found is None else found
    key = shared.key.reveal()
    urls = [f"  {shared.url(address):<34}{name}".rstrip() for name, address in found]
    lines = env_lines(shared.url(found[0][1]), key)
    return "\n".join(
        [
            f"Class server: {shared.model}, {shared.slots} answers at a time (more wait in line).",
            *urls,
            f"Key: {key}",
            "",
            "Students: put these lines in a file named .env in the lessons' folder, then run `make lab`:",
            "",
            *(f"  {line}" for line in lines),
            "",
            f"or run: make join URL={shared.url(found[0][1])} KEY={key}",
            *(["(from another network above, use its URL instead)"] if len(found) > 1 else []),
            qr_code("\n".join(lines), unicode=unicode),
            f"Plain HTTP: use it on a network you trust. Engine log: {shared.log}. Ctrl-C stops it.",
        ]
    )


@dataclass
class Status:
    """The live status line: slots busy, requests waiting, tokens/s, client addresses seen."""

    shared: Shared
    clients: set[str] = field(default_factory=set)
    _tokens: float | None = None
    _at: float = 0.0
    rate: float = 0.0

    def read(self) -> dict[str, float]:
        """Read /metrics, and which addresses are connected to the server now; returns the metrics."""
        import psutil  # the teacher's set (the `local` extra)

        values = share_status(self.shared)
        now, tokens = time.monotonic(), values.get("tokens_predicted_total", 0.0)
        if self._tokens is not None and now > self._at:
            self.rate = max(0.0, tokens - self._tokens) / (now - self._at)
        self._tokens, self._at = tokens, now
        # llama-server logs no client addresses: its open connections say who is there. Sampled once a
        # reading; the OpenAI SDK keeps its connection open between requests, so a student is seen.
        with contextlib.suppress(psutil.Error):
            for conn in psutil.Process(self.shared.process.pid).net_connections(kind="tcp"):
                if (
                    conn.status == psutil.CONN_ESTABLISHED
                    and conn.raddr
                    and conn.laddr.port == self.shared.port
                ):
                    self.clients.add(conn.raddr.ip)
        return values

    def line(self, values: dict[str, float]) -> str:
        busy, queued = int(values.get("requests_processing", 0)), int(values.get("requests_deferred", 0))
        return (
            f"slots busy {busy}/{self.shared.slots} | queued {queued} | {self.rate:.0f} tokens/s | "
            f"clients seen {len(self.clients)}"
        )


def _interrupt(number: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def share(
    port: int = SHARE_PORT, slots: int = SHARE_SLOTS, host: str = SHARE_HOST, out: TextIO | None = None
) -> None:
    """Serve the embedded model (or AKASH_NB_LOCAL_MODEL) to the room, in this process, until interrupted.

    A new key is made and shown with what students set; it is never written to the state file."""
    out = sys.stdout if out is None else out
    # A closed terminal (SIGHUP) or a `kill` (SIGTERM) ends the class server too, as Ctrl-C does: never
    # leave llama-server listening on the room's network with nobody watching it. Windows has no SIGHUP:
    # Ctrl-Break (SIGBREAK) is caught as Ctrl-C is, and a closed console window ends the engine with it,
    # since it shares that console (llama_server.detached gives it a process group, not a console of its own).
    for number in (signal.SIGTERM, getattr(signal, "SIGHUP", None), getattr(signal, "SIGBREAK", None)):
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
    try:
        print(announcement(shared, unicode=unicode), file=out, flush=True)
        status, shown = Status(shared), ""
        while shared.process.poll() is None:
            with contextlib.suppress(OSError, ValueError):  # a reading missed: the next one will do
                line = status.line(status.read())
                if terminal:  # one line, rewritten in place
                    print(f"\r{line}  ", end="", file=out, flush=True)
                elif line != shown:  # a log: a line each time something changed
                    print(line, file=out, flush=True)
                    shown = line
            time.sleep(STATUS_EVERY)
        raise LocalServerError(
            f"The class server exited (code {shared.process.returncode}); its log is {shared.log}."
        )
    finally:
        if terminal:
            print(file=out)
        stop_share(shared)


# --- a student's side ---------------------------------------------------------------------------------------


def class_url(text: str) -> str:
    """The class server's API URL from what a student typed: `10.0.0.5:8080` means http://10.0.0.5:8080/v1."""
    raw = text.strip()
    if "://" not in raw:
        raw = "http://" + raw
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or any(c.isspace() for c in raw):
        raise ConfigError(
            f"{text!r} is not a server address; copy the URL from the teacher's screen, "
            "like http://192.168.1.20:8080/v1. Nothing was written."
        )
    return raw.rstrip("/") if parsed.path.rstrip("/") else raw.rstrip("/") + "/v1"


def served_models(url: str, key: str, timeout: float = JOIN_TIMEOUT) -> list[str]:
    """The models a class server serves, asked with `key`; a ConfigError sentence when it does not answer."""
    try:
        return list_models(url, key, timeout)
    except urllib.error.HTTPError as error:
        if error.code == 401:
            raise ConfigError(
                f"The class server at {url} refused this key (401); copy the key again from "
                "the teacher's screen and run the same command. Nothing was written."
            ) from None
        raise ConfigError(
            f"{url} answered {error.code} instead of a list of models; check the URL on the "
            "teacher's screen (it ends in /v1). Nothing was written."
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ConfigError(
            f"Could not reach {url} ({reason}); check that this laptop is on the same "
            "network as the teacher's and that the class server is running. Nothing was "
            "written."
        ) from None
    except ValueError:
        raise ConfigError(
            f"{url} answered, but not with a list of models: it is not a class server; check "
            "the URL on the teacher's screen. Nothing was written."
        ) from None


def join(url: str, key: str, env_file: Path | None = None) -> str:
    """Check the class server at `url` answers with `key`, then write its `.env` lines into `env_file`
    (default: `.env` in the working directory), keeping every other line there. Returns the one sentence
    to show. The key is written to the file (mode 0600) and never shown."""
    target = Path(".env") if env_file is None else env_file
    api = class_url(url)
    clean, _ = config.clean_key(key, "the KEY you gave")
    served = served_models(api, clean)
    if not target.exists():
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    settings = env_settings(api, clean)
    for name, value in settings.items():
        set_key(target, name, value, quote_mode="never")
    target.chmod(0o600)
    # The environment wins over .env, setting by setting (akash_nb/config.py): say so if it would here.
    winners = [
        name for name, value in settings.items() if os.environ.get(name, "").strip() not in ("", value)
    ]
    if winners:
        return (
            f"Wrote {target}, but environment variable {winners[0]} wins over it; unset it (or start a "
            "new terminal without it), then run `make lab`."
        )
    return (
        f"Connected to the class server at {api} ({', '.join(served) or 'no model listed'}); wrote "
        f"{target}, so `make lab` and every lesson use it."
    )
