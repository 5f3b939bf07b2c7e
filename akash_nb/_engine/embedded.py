"""The embedded model: SmolLM2-135M-Instruct served by llama.cpp's `llama-server` on 127.0.0.1, one server
per configuration shared by every kernel (`ensure_server()`, `stop()`)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
from filelock import FileLock, Timeout

from .._core import in_browser
from .._core.api_key import Secret
from .._core.exceptions import engine_error, file_error
from .._core.files import ensure_folder, read_text, write_atomically
from . import builds as engines
from . import llama_server
from . import weights as models
from .llama_server import (
    CONTEXT_TOKENS,
    READY_TIMEOUT,
    answers,
    command_line,
    free_port,
    pid_alive,
    port_in_use,
    runs_a_server,
    terminate,
)
from .weights import model_name

SLOTS = 4  # a learner's kernels and panels at once; llama-server queues the rest


def _answers(server: Server, timeout: float = 2.0) -> bool:
    """The server at this port serves our model with our key (so it is ours, not a stranger)."""
    return answers(server.base_url, server.key, server.model, timeout)


def state_dir() -> Path:
    """The embedded server's state folder, in this order:

    1. AKASH_NB_STATE_DIR, when set;
    2. platformdirs' per-user state folder for "akash-nb": on Linux $XDG_STATE_HOME/akash-nb, else
       ~/.local/state/akash-nb; on macOS ~/Library/Application Support/akash-nb; on Windows
       %LOCALAPPDATA%\\akash-nb.

    Mode 0700 makes it private on Linux and macOS; on Windows chmod sets only the read-only flag, and a folder
    in the user's profile is private to them by its access list."""
    explicit = os.environ.get("AKASH_NB_STATE_DIR")
    folder = Path(explicit) if explicit else platformdirs.user_state_path(engines.APP_NAME, appauthor=False)
    return ensure_folder(
        folder,
        "The state folder",
        "remove what is there, or set AKASH_NB_STATE_DIR to a folder you can write",
        mode=0o700,
    )


@dataclass(frozen=True)
class Server:
    pid: int
    port: int
    key: Secret
    model: str
    model_path: str
    log: str
    config: str  # which configuration this server runs (`config_id`): its state file is named for it
    engine: str = ""  # the engine's command (a llama-server binary, or the Python running the wheel's)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "port": self.port,
            "key": self.key.reveal(),
            "model": self.model,
            "model_path": self.model_path,
            "log": self.log,
            "config": self.config,
            "engine": self.engine,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Server:
        return cls(
            pid=int(data["pid"]),
            port=int(data["port"]),
            key=Secret(str(data["key"])),
            model=str(data["model"]),
            model_path=str(data["model_path"]),
            log=str(data["log"]),
            config=str(data["config"]),
            engine=str(data.get("engine", "")),
        )


def config_id(engine: engines.Engine, model: Path, slots: int = SLOTS) -> str:
    """Names one configuration: servers are shared only between processes that would start the same one.

    The Python environment is part of it: two checkouts (each with its own .venv) share the engine and the
    model file from the user's cache, yet each gets a server of its own, which the other never stops."""
    text = "\0".join(
        (
            sys.prefix,
            str(engine.server.resolve()),
            *engine.args,
            engine.version,
            str(model.resolve()),
            str(slots),
            str(CONTEXT_TOKENS),
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def state_file(config: str) -> Path:
    return state_dir() / f"server-{config}.json"


def _lock(config: str) -> FileLock:
    return FileLock(str(state_dir() / f"server-{config}.lock"), mode=0o600)


def _read_state(config: str) -> Server | None:
    """The server recorded for `config`; None when none is. A state file that cannot be read or is not
    one (a folder in its place, truncated, the wrong shape) is a FileError naming it and the fix: it may
    belong to a server still running, which replacing it would orphan."""
    path = state_file(config)
    try:
        data = json.loads(read_text(path))  # a FIFO or a device refused before it is opened
        if not isinstance(data, dict):
            raise ValueError(f"it holds a JSON {type(data).__name__}, not an object")
        server = Server.from_json(data)
        if server.pid <= 1 or not 0 < server.port < 65536:  # never signal init or our own process group
            raise ValueError("its pid or port is not a process or port number")
        return server
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        why = f"missing {error}" if isinstance(error, KeyError) else error
        raise file_error(
            path,
            "The embedded server's state file",
            why,
            f"stop any llama-server you started by hand, then delete it (rm -r '{path}'); "
            "the next client() starts a fresh server",
        ) from error


def recorded_servers() -> list[Server]:
    """Every server recorded in the state folder, whatever its configuration."""
    found = []
    for path in sorted(state_dir().glob("server-*.json")):
        server = _read_state(path.stem.removeprefix("server-"))
        if server is not None:
            found.append(server)
    return found


def _write_state(server: Server) -> None:
    write_atomically(state_file(server.config), json.dumps(server.to_json()))


def _is_ours(server: Server) -> bool:
    """The recorded pid is still our server process, not a stranger that got the pid after a reboot."""
    if _answers(server):
        return True
    # a server still loading (or stuck) does not answer yet; its command line says what it is
    return runs_a_server(command_line(server.pid), server.port)


def _fixed_port() -> int | None:
    raw = os.environ.get("AKASH_NB_LOCAL_PORT", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise engine_error("port-invalid", value=repr(raw))
    port = int(raw)
    if port_in_use(port):
        raise engine_error("port-in-use", port=port)
    return port


def _current_config() -> str | None:
    """This configuration's id, or None when no llama-server has been found or built yet."""
    found, weights = engines.find(), models.find()
    return None if found is None or weights is None else config_id(found, weights)


def running() -> Server | None:
    """This configuration's server, if one is alive and answering."""
    config = _current_config()
    server = None if config is None else _read_state(config)
    if server is not None and pid_alive(server.pid) and _answers(server):
        return server
    return None


def ensure_server(timeout: float = READY_TIMEOUT) -> Server:
    """This configuration's embedded server: reused when alive, started (or restarted) otherwise."""
    in_browser.refuse("The embedded model (llama.cpp's server, a process on this machine)")
    wanted = models.ensure()
    engine = engines.ensure()
    config = config_id(engine, wanted)
    lock = _lock(config)
    try:
        with lock.acquire(timeout=timeout + 30):
            server = _read_state(config)
            if server is not None and pid_alive(server.pid) and _is_ours(server):
                if _answers(server):
                    return server
                terminate(server.pid)  # left half-started by a process that died: replace it
            state_file(config).unlink(missing_ok=True)
            return _start(engine, wanted, config, timeout)
    except Timeout:
        raise engine_error("lock-timeout", seconds=f"{timeout + 30:g}", lock=lock.lock_file) from None


def _start(engine: engines.Engine, path: Path, config: str, timeout: float) -> Server:
    port = _fixed_port() or free_port()
    key = Secret(secrets.token_urlsafe(24))
    log = state_dir() / f"server-{config}.log"

    def recorded(pid: int) -> Server:
        return Server(pid, port, key, model_name(path), str(path), str(log), config, " ".join(engine.command))

    try:
        process = llama_server.start(
            engine,
            path,
            port,
            slots=SLOTS,
            key=key,
            key_file=state_dir() / f"server-{config}.key",
            log=log,
            timeout=timeout,
            # Recorded before it is ready, so a process that takes the lock after we die can find and end it.
            started=lambda process: _write_state(recorded(process.pid)),
            cwd=state_dir(),  # detached (llama_server.start): outlives the kernel, shared by the next one
        )
    except BaseException:
        state_file(config).unlink(missing_ok=True)
        raise
    return recorded(process.pid)


def _stop(config: str) -> bool:
    with _lock(config):
        server = _read_state(config)
        state_file(config).unlink(missing_ok=True)
        if server is None or not pid_alive(server.pid) or not _is_ours(server):
            return False
        terminate(server.pid)
        return True


def stop() -> bool:
    """Stop this configuration's server (never another checkout's or model's). True if one was running."""
    config = _current_config()
    return config is not None and _stop(config)


def stop_all() -> int:
    """Stop every server recorded in this state folder, whatever its configuration; how many were running."""
    return sum(_stop(server.config) for server in recorded_servers())
