"""The class server (`akash-nb serve --share`): the embedded model for a room, in this process's foreground.

It runs llama-server with the embedded model's command line (`local.server_command`) on every address of this
machine, behind a new key made at each start, answering `SHARE_SLOTS` requests at once with continuous
batching and queueing the rest. It never goes through the state file, so notebooks, `local.ensure_server()`
and `akash-nb stop` neither see nor touch it.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import engine as engines
from . import model as models
from .local import (
    READY_TIMEOUT,
    Server,
    _error,
    _launch,
    _port_in_use,
    _wait_until_ready,
    model_name,
    server_command,
    state_dir,
)
from .secret import Secret

SHARE_HOST = "0.0.0.0"  # every address of this machine: the room's network
SHARE_PORT = 8080  # llama.cpp's own default port
SHARE_SLOTS = 16  # measured on 2 cores: 16 at once streams ~2x one user's rate; a room of 30 queues


@dataclass(frozen=True)
class Shared:
    """A class server running in this process's foreground (what `share()` starts)."""

    process: subprocess.Popen
    port: int
    key: Secret
    model: str
    slots: int
    log: Path

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/v1"


def start_share(port: int = SHARE_PORT, slots: int = SHARE_SLOTS, host: str = SHARE_HOST,
                timeout: float = READY_TIMEOUT) -> Shared:
    """Start a class server (see `share`) and wait until it answers; the caller stops it (`stop_share`)."""
    if slots < 1:
        raise _error(f"--slots is {slots}; it must be at least 1.")
    path = models.ensure()
    binary = engines.ensure().server
    if _port_in_use(port, host):
        raise _error(f"Port {port} on {host} is already in use; pick another with --port.")
    key = secrets.token_urlsafe(24)
    key_file = state_dir() / f"share-{port}.key"
    log = state_dir() / f"share-{port}.log"
    process = _launch(lambda kf: server_command(binary, path, port, kf, host=host, slots=slots),
                      key, key_file, log)
    shared = Shared(process, port, Secret(key), model_name(path), slots, log)
    probe = Server(process.pid, port, shared.key, shared.model, str(path), str(log), "share")
    try:
        _wait_until_ready(process, probe, timeout)
    except BaseException:
        stop_share(shared)
        raise
    finally:
        key_file.unlink(missing_ok=True)
    return shared


def stop_share(shared: Shared) -> None:
    shared.process.terminate()
    try:
        shared.process.wait(10)
    except subprocess.TimeoutExpired:
        shared.process.kill()
        shared.process.wait()


def share_status(shared: Shared) -> dict[str, float]:
    """Slots busy, requests waiting and tokens generated so far, from llama-server's /metrics."""
    request = urllib.request.Request(shared.url().removesuffix("/v1") + "/metrics",
                                     headers={"Authorization": f"Bearer {shared.key.reveal()}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("llamacpp:") and " " in line:
            name, value = line.split()[:2]
            with contextlib.suppress(ValueError):
                values[name.removeprefix("llamacpp:")] = float(value)
    return values


def share(port: int = SHARE_PORT, slots: int = SHARE_SLOTS, host: str = SHARE_HOST,
          announce: Callable[[str], None] = print) -> None:
    """Serve the embedded model (or AKASH_NB_LOCAL_MODEL) to the room, in this process, until interrupted.

    A new key is made and announced (with what students set); it is never written to the state file."""
    shared = start_share(port, slots, host)
    try:
        announce(
            f"Sharing {shared.model} on port {port} of every address of this machine "
            f"({socket.gethostname()}), "
            f"{slots} requests at a time (more wait in line).\n"
            f"Share key: {shared.key.reveal()}\n"
            "On each student's machine (use this machine's address on the room's network):\n"
            f"  AKASH_NB_BASE_URL=http://<this-machine>:{port}/v1 AKASH_NB_API_KEY={shared.key.reveal()} "
            "make lab\n"
            f"Plain HTTP: use it on a network you trust. Its log is {shared.log}. Ctrl-C stops it; "
            "`akash-nb stop` does not touch it."
        )
        while shared.process.poll() is None:
            time.sleep(0.5)
        raise _error(f"The class server exited (code {shared.process.returncode}); its log is {shared.log}.")
    finally:
        stop_share(shared)
