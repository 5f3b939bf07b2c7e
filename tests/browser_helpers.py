"""JupyterLab in a subprocess and Debian's Chromium through Playwright, for tests/test_browser.py.

Everything the lab writes (config, runtime files, settings, workspaces, the embedded model's state) goes to
a temporary folder; only JUPYTER_PATH is kept, so the lab finds the ipywidgets extension installed in the
venv's share/jupyter. The lab serves a copy of the lessons, so running cells never touches the committed
ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_ENV = "AKASH_NB_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDGETS_EXTENSION = "@jupyter-widgets/jupyterlab-manager"
LAB_READY_SECONDS = 60.0
LAB_STOP_SECONDS = 10.0

# User settings for the isolated lab: every cell stays in the DOM (no virtual scrolling, so every output
# can be inspected), and no news or update check pops up over the notebook.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def chromium() -> Path:
    """The Chromium binary: AKASH_NB_CHROMIUM, else Debian's /usr/bin/chromium. AssertionError if absent."""
    path = Path(os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM)
    assert path.is_file() and os.access(path, os.X_OK), (
        f"The browser tests need Chromium at {path}: run `bash scripts/chromium.sh` (apt-get install "
        f"chromium), or set {CHROMIUM_ENV} to a Chromium binary."
    )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def labextensions(env: dict[str, str]) -> str:
    """What `jupyter labextension list` says (it writes to stderr) in the lab's environment."""
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout + done.stderr


def lab_environment(home: Path, provider: str, recordings: Path, passed: dict[str, str]) -> dict[str, str]:
    """The lab's environment: ours, minus every provider setting, plus private folders under `home`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AKASH_NB_", "AKASHML_", "AKASH_API", "JUPYTER", "OPENAI_"))
    }
    folders = {
        "JUPYTER_CONFIG_DIR": home / "config",
        "JUPYTER_RUNTIME_DIR": home / "runtime",
        "JUPYTER_DATA_DIR": home / "data",
        "AKASH_NB_STATE_DIR": home / "state",
        "IPYTHONDIR": home / "ipython",
        "MPLCONFIGDIR": home / "mpl",
    }
    for name, folder in folders.items():
        folder.mkdir(parents=True, exist_ok=True)
        env[name] = str(folder)
    if os.environ.get("JUPYTER_PATH"):
        env["JUPYTER_PATH"] = os.environ["JUPYTER_PATH"]
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["AKASH_NB_PROVIDER"] = provider
    env["AKASH_NB_RECORDINGS"] = str(recordings)
    env.update(passed)
    env.pop("CI", None)  # the lessons never prompt anyway; CI would only change what doctor says
    for name, values in LAB_SETTINGS.items():
        plugin, _, file = name.rpartition("/")
        target = home / "config" / "lab" / "user-settings" / plugin / file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    return env


@dataclass
class Lab:
    """A running JupyterLab."""

    process: subprocess.Popen
    port: int
    token: str
    root: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, method: str = "GET") -> object:
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def notebook_url(self, name: str, workspace: str) -> str:
        """`name` opened alone in a fresh workspace, so no tab from an earlier lesson comes back."""
        return f"{self.url}/lab/workspaces/{workspace}/tree/{name}?reset&token={self.token}"

    def shutdown_kernels(self) -> None:
        """End every session's kernel (quietly: this runs in `finally` blocks, after a failure too)."""
        with contextlib.suppress(OSError, ValueError):
            for session in self.api("/api/sessions"):
                self.api(f"/api/sessions/{session['id']}", method="DELETE")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def running_lab(root: Path, env: dict[str, str], log: Path) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1 serving `root`, stopped (its whole process group) whatever happens."""
    port, token = free_port(), secrets.token_hex(24)
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.extension_manager=readonly",
        "--LabApp.news_url=",
    ]
    if os.geteuid() == 0:  # CI containers run as root
        command.append("--allow-root")
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    lab = Lab(process, port, token, root, log)
    try:
        _wait_ready(lab)
        yield lab
    finally:
        _stop(process)


def _wait_ready(lab: Lab) -> None:
    deadline = time.monotonic() + LAB_READY_SECONDS
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            raise AssertionError(f"JupyterLab exited with {lab.process.returncode}:\n{lab.log_tail()}")
        with contextlib.suppress(OSError, ValueError):
            if isinstance(lab.api("/api/status"), dict):
                return
        time.sleep(0.2)
    raise AssertionError(
        f"JupyterLab did not answer /api/status within {LAB_READY_SECONDS:.0f} s:\n{lab.log_tail()}"
    )


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the lab's process group (the server and its kernels), SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(LAB_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(LAB_STOP_SECONDS)
    # Kernels run in their own process groups; the server normally shuts them down on SIGTERM.


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.1) -> object:
    """Poll `condition` until it returns something true; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
