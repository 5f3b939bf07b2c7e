"""Share mode (`akash-nb serve --share`): the embedded model for a class, with a real server process.

It listens on every address only when asked to, takes only the key it prints, lets `--max-concurrent`
completion requests in at once and answers the next with a 429 in the OpenAI error shape and a
Retry-After, and keeps away from the notebooks' own state-file server.

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

from akash_nb import local
from akash_nb.errors import explain
from akash_nb.providers import LOCAL_MODEL_NAME

pytestmark = pytest.mark.live

CAP = 2
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
        while status(shared.url(local.LOAD_PATH), key) != 200:
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
    server = start_shared(state, "--max-concurrent", str(CAP))
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


def load(server: Shared) -> dict:
    return json.loads(request(server.url(local.LOAD_PATH), server.key)[2])


def wait_until_idle(server: Shared, within: float = 10.0) -> None:
    """A place is given back just after the answer's last byte is sent: the client may see it first."""
    deadline = time.monotonic() + within
    while load(server)["running"]:
        assert time.monotonic() < deadline, "a finished request kept its place"
        time.sleep(0.01)


# --- binding -----------------------------------------------------------------------------------------------

def test_share_mode_listens_on_every_address(shared):
    assert listening_addresses(shared.port) == {"00000000"}  # 0.0.0.0


@pytest.mark.parametrize("flags", [["--host", "0.0.0.0"], ["--port", "8080"], ["--max-concurrent", "3"]])
def test_leaving_loopback_takes_the_share_flag(flags, tmp_path):
    done = subprocess.run([sys.executable, "-m", "akash_nb.cli", "serve", *flags], capture_output=True,
                          text=True, env=akash_nb_env(tmp_path), timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert f"{flags[0]} only with --share" in done.stderr
    assert not (tmp_path / "server.json").exists(), "no server was started"


def test_share_mode_keeps_away_from_the_notebooks_server(shared, monkeypatch):
    state = Path(f"/proc/{shared.process.pid}/cwd").resolve()  # started with this AKASH_NB_STATE_DIR
    monkeypatch.setenv("AKASH_NB_STATE_DIR", str(state))
    assert not (state / "server.json").exists(), "the share key is never written to the state file"
    assert local.running() is None, "notebooks do not take the class server for their own"
    assert shared.key not in Path(f"/proc/{shared.process.pid}/cmdline").read_bytes().decode()


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
        assert status(shared.url(local.LOAD_PATH), key) == 401
    assert status(shared.base_url + "/models", shared.key) == 200
    assert load(shared) == {"running": 0, "max_concurrent": CAP}, "refused requests take no place"


def test_the_printed_key_works_with_the_openai_client(shared):
    client = shared.client(max_retries=0)
    assert [m.id for m in client.models.list()] == [LOCAL_MODEL_NAME]
    response = client.chat.completions.create(model="anything", messages=[{"role": "user", "content": "Hi"}],
                                              max_tokens=5, temperature=0)
    assert response.model == LOCAL_MODEL_NAME
    assert response.choices[0].message.content


# --- the cap -----------------------------------------------------------------------------------------------

def test_requests_beyond_the_cap_get_429_with_retry_after_while_the_others_complete(shared):
    answers: list = []

    def capped() -> None:
        answers.append(shared.client(max_retries=0).chat.completions.create(
            model=LOCAL_MODEL_NAME, messages=STORY, max_tokens=200, temperature=0))

    workers = [threading.Thread(target=capped) for _ in range(CAP)]
    for worker in workers:
        worker.start()
    try:
        deadline = time.monotonic() + 60
        while load(shared)["running"] < CAP:
            assert time.monotonic() < deadline, "the capped requests never ran"
            time.sleep(0.01)

        chat = {"model": LOCAL_MODEL_NAME, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}
        for _ in range(3):
            code, headers, body = request(shared.base_url + "/chat/completions", shared.key, chat)
            assert code == 429
            assert headers["retry-after"] == str(local.SHARE_RETRY_AFTER)
            error = json.loads(body)["error"]
            assert error["type"] == "requests" and error["code"] == "rate_limit_exceeded"
            assert error["param"] is None and "busy" in error["message"]

        with pytest.raises(openai.RateLimitError) as caught:
            shared.client(max_retries=0).chat.completions.create(model=LOCAL_MODEL_NAME, messages=STORY,
                                                                 max_tokens=5)
        sentence = explain(caught.value, "the class server").sentence
        assert "429" in sentence and f"Retry-After: {local.SHARE_RETRY_AFTER} s" in sentence
        assert load(shared)["running"] == CAP, "the capped requests were still running throughout"
    finally:
        for worker in workers:
            worker.join(180)

    assert len(answers) == CAP
    for answer in answers:
        assert answer.model == LOCAL_MODEL_NAME
        assert answer.choices[0].finish_reason in ("stop", "length")
        assert answer.choices[0].message.content.strip()
    wait_until_idle(shared)
    assert status(shared.base_url + "/chat/completions", shared.key, chat) == 200, "places are given back"


def test_a_stream_holds_its_place_until_it_ends(shared):
    client = shared.client(max_retries=0)
    with client.chat.completions.create(model=LOCAL_MODEL_NAME, messages=STORY, max_tokens=40,
                                        stream=True) as stream:
        next(iter(stream))
        assert load(shared)["running"] == 1
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text
    wait_until_idle(shared)
