"""llama.cpp's `llama-server` as a process: its command line, its environment, starting it, waiting until
it answers, and ending it, for both the embedded model's manager (`_engine/embedded.py`) and the class server
(`akash_nb._engine.class_server`)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._core import untrusted
from .._core.api_key import Secret
from .._core.exceptions import LocalServerError, engine_error
from .._core.files import write_atomically
from . import builds as engines
from .weights import model_name

CONTEXT_TOKENS = 4096  # per slot: prompt + answer (the lessons' longest request is 257 + 200 tokens)
# The answer's length when a request sets no max_tokens (the guide's first call does not): without it the
# model may write until the slot's context is full, minutes on a busy laptop. finish_reason says "length".
DEFAULT_ANSWER_TOKENS = 512
READY_TIMEOUT = 90.0
# llama.cpp's threads wait for each other in spin loops: more threads than cores turns 100 tokens/s into a
# handful, so one per core, at most 4 (a 135M model gains little past that).
THREADS = max(1, min(4, os.cpu_count() or 2))
# Variables llama-server reads as options (LLAMA_ARG_*, LLAMA_API_KEY): none may change our server's setup.
_FOREIGN_VARIABLES = ("LLAMA_ARG_", "LLAMA_API_KEY")
# llama.cpp's OpenMP threads spin while they wait for each other: on a laptop that also runs JupyterLab
# and a browser, the spinning threads take the cores the working ones need (docs/benchmarks.md).
WAIT_POLICY = {"OMP_WAIT_POLICY": "PASSIVE"}


def server_command(
    engine: engines.Engine,
    path: Path,
    port: int,
    key_file: Path,
    *,
    host: str = "127.0.0.1",
    slots: int,
    answer_tokens: int = DEFAULT_ANSWER_TOKENS,
    unified: bool = False,
    cache_ram: int | None = None,
    context: int | None = None,
    http_threads: int | None = None,
) -> list[str]:
    """llama-server's command line (the wheel's server takes the same): everything but the key, which it
    reads from `key_file`. The KV cache holds `context` tokens (default `slots` × CONTEXT_TOKENS), split
    evenly among the slots, or shared by all of them when `unified` (a slot may then use more than its
    share); `cache_ram` MiB keeps prompts for reuse across slots; `http_threads` connections are served at
    once (llama-server's default is slots + 2: a streamed answer holds one until it ends)."""
    return [
        *engine.command,
        "--model",
        str(path),
        "--alias",
        model_name(path),  # every response names the model that answered
        "--host",
        host,
        "--port",
        str(port),
        "--parallel",
        str(slots),
        "--ctx-size",
        str(slots * CONTEXT_TOKENS if context is None else context),
        "--threads",
        str(THREADS),
        "--threads-batch",
        str(THREADS),
        "--n-predict",
        str(answer_tokens),  # only for a request that sets no max_tokens
        "--api-key-file",
        str(key_file),
        "--no-webui",
        "--metrics",
        *(["--kv-unified"] if unified else []),
        *(["--cache-ram", str(cache_ram)] if cache_ram is not None else []),
        *(["--threads-http", str(http_threads)] if http_threads is not None else []),
    ]


def server_environment() -> dict[str, str]:
    """This process's environment without any key or llama-server option; passive waiting unless the user
    chose a policy."""
    kept = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("API_KEY") and not k.startswith(_FOREIGN_VARIABLES)
    }
    return WAIT_POLICY | kept  # a policy the user set wins


def start(
    engine: engines.Engine,
    model_path: Path,
    port: int,
    *,
    key: Secret,
    key_file: Path,
    log: Path,
    timeout: float,
    started: Callable[[subprocess.Popen[bytes]], object] = lambda process: None,
    cwd: Path | None = None,
    **options: Any,
) -> subprocess.Popen[bytes]:
    """Start llama-server with `server_command(...)`'s `options` (slots, host, answer_tokens, ...) and
    return once it answers on 127.0.0.1:`port` with `key`.

    The key goes to llama-server in `key_file` (0600), deleted once the server is up or has failed; its
    output goes to `log`. It starts detached (`detached()`) in `cwd`. `started(process)` runs as soon as the
    process exists (to record it before the wait). A server that exits or never answers is ended, and the
    LocalServerError says why."""
    write_atomically(key_file, key.reveal() + "\n")
    log.unlink(missing_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as log_file:
        process = subprocess.Popen(
            server_command(engine, model_path, port, key_file, **options),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=server_environment(),
            cwd=cwd,
            **detached(),
        )
    try:
        started(process)
        wait_until_ready(
            process,
            base_url=f"http://127.0.0.1:{port}/v1",
            key=key,
            model=model_name(model_path),
            log=log,
            engine=engine,
            timeout=timeout,
        )
    except BaseException:
        end(process)
        raise
    finally:
        key_file.unlink(missing_ok=True)
    return process


def end(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """End a llama-server this process started: SIGTERM, then SIGKILL after `grace` seconds."""
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def list_models(base_url: str, key: str, timeout: float) -> list[str]:
    """The model ids an OpenAI-compatible server lists at `base_url`/models when asked with `key`.

    Raises urllib's HTTPError or URLError, OSError, or ValueError (an answer that is not a model list)."""
    request = urllib.request.Request(base_url + "/models", headers={"Authorization": f"Bearer {key}"})
    with untrusted.urlopen(request, timeout=timeout) as response:  # no key to another origin
        data = json.load(response)
    if not isinstance(data, dict) or not isinstance(data.get("data", []), list):
        raise ValueError("not a list of models")
    return [str(m.get("id")) for m in data.get("data", []) if isinstance(m, dict)]


def answers(base_url: str, key: Secret, model: str, timeout: float = 2.0) -> bool:
    """The server at `base_url` serves `model` with `key` (so it is ours, not a stranger on the port)."""
    try:
        return model in list_models(base_url, key.reveal(), timeout)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_until_ready(
    process: subprocess.Popen[bytes],
    *,
    base_url: str,
    key: Secret,
    model: str,
    log: Path,
    engine: engines.Engine,
    timeout: float,
) -> None:
    """Return once the started server answers; a LocalServerError sentence when it exits or never does."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            # SIGILL on POSIX; STATUS_ILLEGAL_INSTRUCTION as an exit code on Windows
            if process.returncode in (-signal.SIGILL, 0xC000001D):
                fix = (
                    f"set {engines.ROUTE_VARIABLE}=build to compile llama.cpp for this CPU"
                    if engine.args
                    else f"delete {engines.build_dir()} and run `akash-nb engine --build`"
                )
                raise engine_error(
                    "illegal-instruction", engine=engine.describe(), fix=fix, variable=engines.VARIABLE
                )
            raise LocalServerError(
                f"The embedded model server exited (code {process.returncode}) while starting; "
                f"its log is {log}.\n{tail(log)}"
            )
        if answers(base_url, key, model, timeout=1.0):
            return
        time.sleep(0.05)
    raise engine_error("server-not-ready", timeout=f"{timeout:g}", log=log)


def tail(log: Path, lines: int = 5) -> str:
    """The last lines of a server's log ("" when it cannot be read), each `untrusted.shown`: it may quote
    anything (a model file's metadata, a request)."""
    with contextlib.suppress(OSError):
        last = log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(untrusted.shown(line) for line in last)
    return ""


def detached() -> dict[str, Any]:
    """Popen options that let the server outlive the process that started it, in a group of its own that
    `terminate` ends whole: a new session on POSIX, a new process group on Windows."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (our own child that died is reaped, and is not alive)."""
    if sys.platform == "win32":
        # os.kill(pid, 0) would end the process on Windows (TerminateProcess); ask the system instead.
        import psutil  # the embedded model's set (the `local` extra), which the Windows route installs

        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def terminate(pid: int, grace: float = 5.0) -> None:
    """End the process group of `pid`: SIGTERM, then SIGKILL after `grace` s. On Windows, which has no
    process-group signals, the process and its children are ended (TerminateProcess, through psutil)."""
    if sys.platform == "win32":
        import psutil  # the embedded model's set (the `local` extra), which the Windows route installs

        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            family = [process, *process.children(recursive=True)]
            for member in family:
                with contextlib.suppress(psutil.Error):
                    member.terminate()
            _, left = psutil.wait_procs(family, timeout=grace)
            for member in left:
                with contextlib.suppress(psutil.Error):
                    member.kill()
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.05)
        if pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
    pid_alive(pid)  # reaps it if it was our child


def command_line(pid: int) -> list[str]:
    """Process `pid`'s command line ([] when it cannot be read)."""
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    try:
        import psutil  # the embedded model's set (the `local` extra): where there is no /proc
    except ImportError:
        return []
    try:
        return [str(part) for part in psutil.Process(pid).cmdline()]
    except (psutil.Error, OSError):
        return []


def runs_a_server(argv: list[str], port: int) -> bool:
    """Whether a command line is one of ours: llama-server or the wheel's server, on `port`."""
    if not argv or str(port) not in argv:
        return False
    program = Path(argv[0]).name.lower().removesuffix(".exe")
    return program == "llama-server" or engines.WHEEL_MODULE in argv


def free_port() -> int:
    """A port nothing listens on now, on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False
