"""Share mode (`akash-nb serve --share`): the embedded model for a class, with a real server process.

It listens on every address only when asked to, takes only the key it prints, answers `--slots` requests at
once with continuous batching and queues the rest (a room of 30 at its defaults, none refused), and keeps
away from the notebooks' own state-file server.

Every request here goes to 127.0.0.1, although the server listens on 0.0.0.0: no test sends anything to
another address."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

from akash_nb import local, share
from akash_nb.providers import LOCAL_MODEL_NAME

pytestmark = pytest.mark.live

STORY = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


def akash_nb_env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKASH") and not k.endswith("API_KEY")}
    return env | {"AKASH_NB_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1"}


class Shared:
    """A `serve --share` process, its port and the key it printed."""

    def __init__(self, process: subprocess.Popen, port: int, key: str, lines: queue.Queue) -> None:
        self.process, self.port, self.key, self.lines = process, port, key, lines

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"  # loopback, though it listens everywhere

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def client(self, **kw) -> openai.OpenAI:
        return openai.OpenAI(api_key=self.key, base_url=self.base_url, timeout=120, **kw)


def start_shared(state: Path, *args: str) -> Shared:
    port = local._free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "akash_nb.cli", "serve", "--share", "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        env=akash_nb_env(state), cwd=state, start_new_session=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    key, deadline = None, time.monotonic() + 120
    try:
        while key is None:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line.startswith("Share key: "):
                key = line.removeprefix("Share key: ").strip()
        shared = Shared(process, port, key, lines)
        while status(shared.base_url + "/models", key) != 200:
            assert time.monotonic() < deadline and process.poll() is None, "the share server did not start"
            time.sleep(0.05)
        return shared
    except BaseException:
        stop(process)
        raise


def stop(process: subprocess.Popen) -> None:
    """End the process group this test started, by its id: politely, then for sure."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(15)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    state = tmp_path_factory.mktemp("share-state")
    server = start_shared(state)  # its defaults, as a teacher starts it
    yield server
    stop(server.process)


def request(url: str, key: str | None = None, body: dict | None = None):
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def status(url: str, key: str | None = None, body: dict | None = None) -> int:
    try:
        return request(url, key, body)[0]
    except (urllib.error.URLError, OSError):
        return 0


def listening_addresses(port: int) -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            address, hex_port = line.split()[1].split(":")
            if line.split()[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def metrics(server: Shared) -> dict[str, float]:
    values = {}
    for line in request(server.url("/metrics"), server.key)[2].decode().splitlines():
        if line.startswith("llamacpp:"):
            name, value = line.split()[:2]
            values[name.removeprefix("llamacpp:")] = float(value)
    return values


def processes_of(pid: int) -> list[int]:
    """This process and every process it started (share mode runs llama-server as its child)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(p for child in children for p in processes_of(int(child)))]


# --- binding -----------------------------------------------------------------------------------------------

def test_share_mode_listens_on_every_address(shared):
    assert listening_addresses(shared.port) == {"00000000"}  # 0.0.0.0


@pytest.mark.parametrize("flags", [["--host", "0.0.0.0"], ["--port", "8080"], ["--slots", "3"]])
def test_leaving_loopback_takes_the_share_flag(flags, tmp_path):
    done = subprocess.run([sys.executable, "-m", "akash_nb.cli", "serve", *flags], capture_output=True,
                          text=True, env=akash_nb_env(tmp_path), timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert f"{flags[0]} only with --share" in done.stderr
    assert not list(tmp_path.glob("server-*.json")), "no server was started"


def test_share_mode_keeps_away_from_the_notebooks_server(shared, monkeypatch):
    state = Path(f"/proc/{shared.process.pid}/cwd").resolve()  # started with this AKASH_NB_STATE_DIR
    monkeypatch.setenv("AKASH_NB_STATE_DIR", str(state))
    assert not list(state.glob("server-*.json")), "the share key is never written to the state file"
    assert local.running() is None, "notebooks do not take the class server for their own"
    for pid in processes_of(shared.process.pid):
        assert shared.key not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert shared.key not in Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    assert not list(state.glob("*.key")), "the key file is gone once the server has read it"


def test_a_port_in_use_is_a_sentence_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "akash_nb.cli", "serve", "--share", "--port", str(port)],
                              capture_output=True, text=True, env=akash_nb_env(tmp_path), timeout=60,
                              stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert f"Port {port} on 0.0.0.0 is already in use" in done.stderr


# --- the key -----------------------------------------------------------------------------------------------

def test_the_key_is_required(shared):
    chat = {"model": LOCAL_MODEL_NAME, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    almost = shared.key[:-1] + ("b" if shared.key.endswith("a") else "a")
    for key in (None, "wrong", almost):
        assert status(shared.base_url + "/models", key) == 401
        assert status(shared.base_url + "/chat/completions", key, chat) == 401
        assert status(shared.url("/metrics"), key) == 401
    assert status(shared.base_url + "/models", shared.key) == 200


def test_the_printed_key_works_with_the_openai_client(shared):
    client = shared.client(max_retries=0)
    assert [m.id for m in client.models.list()] == [LOCAL_MODEL_NAME]
    response = client.chat.completions.create(model="anything", messages=[{"role": "user", "content": "Hi"}],
                                              max_tokens=5, temperature=0)
    assert response.model == LOCAL_MODEL_NAME
    assert response.choices[0].message.content


# --- a room at once ----------------------------------------------------------------------------------------

ROOM = 30


def test_a_room_of_thirty_at_once_all_get_answers_none_refused(shared):
    """Lesson 02's guide cell, streamed by 30 students at the same moment, at the server's defaults: the
    first `SHARE_SLOTS` are answered together, the rest wait in line; nobody gets an error."""
    start = threading.Barrier(ROOM)
    answers: dict[int, str] = {}
    failures: list[BaseException] = []
    busiest = {"requests_processing": 0.0, "requests_deferred": 0.0}
    watching = threading.Event()

    def student(number: int) -> None:
        client = shared.client(max_retries=0)
        start.wait()
        try:
            stream = client.chat.completions.create(
                model=LOCAL_MODEL_NAME, max_tokens=32, temperature=0.7, stream=True,
                messages=[{"role": "user", "content": f"Student {number}: who won the World Cup in 2022?"}])
            answers[number] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        except BaseException as error:  # reported below, with the others
            failures.append(error)

    def watch() -> None:
        while not watching.is_set():
            for name, value in metrics(shared).items():
                if name in busiest:
                    busiest[name] = max(busiest[name], value)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    students = [threading.Thread(target=student, args=(n,)) for n in range(ROOM)]
    for thread in students:
        thread.start()
    for thread in students:
        thread.join(180)
    watching.set()
    watcher.join(10)
    assert failures == []
    assert sorted(answers) == list(range(ROOM)) and all(answers.values())
    assert 1 < busiest["requests_processing"] <= share.SHARE_SLOTS


def test_requests_beyond_the_slots_wait_in_line_and_are_answered(tmp_path):
    small = start_shared(tmp_path, "--slots", "2")
    try:
        answers: list = []

        def student() -> None:
            stream = small.client(max_retries=0).chat.completions.create(
                model=LOCAL_MODEL_NAME, max_tokens=150, stream=True, extra_body={"ignore_eos": True},
                messages=[{"role": "user", "content": "Write a long story about a dragon."}])
            answers.append([c.choices[0].finish_reason for c in stream if c.choices][-1])

        students = [threading.Thread(target=student) for _ in range(4)]
        for thread in students:
            thread.start()
        deadline, waited = time.monotonic() + 30, 0.0
        while waited < 2 and time.monotonic() < deadline:
            waited = metrics(small).get("requests_deferred", 0.0)
            time.sleep(0.02)
        for thread in students:
            thread.join(120)
        assert waited == 2, "two requests beyond the two slots waited in line"
        assert answers == ["length"] * 4, "and each got its whole answer after"
    finally:
        stop(small.process)
