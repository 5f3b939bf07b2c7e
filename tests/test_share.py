"""Share mode (`akash-nb serve --share`): the embedded model for a class, with a real server process.

It listens on every address only when asked to, takes only the key it prints, answers `--slots` requests at
once with continuous batching and queues the rest (a room of 30 at its defaults is answered at once, none
waiting, none refused), stops a call without max_tokens at the cap it shows, and keeps away from the
notebooks' own state-file server. Its screen is one short block that fits 80×24: a URL for each address of
this machine, the key, the join line and the `.env` lines students paste (which the room test's students
use, exactly as printed), a QR code of them when the terminal is tall enough, then a live status line read
from the engine that counts the machines that joined. Ctrl-C or SIGTERM stops it with nothing alarming on
screen. `akash-nb join URL KEY` writes those lines.

Every request here goes to 127.0.0.1, although the server listens on 0.0.0.0: no test sends anything to
another address."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest
import segno
from processes import run

import akash_nb
from akash_nb._core.providers import LOCAL_MODEL_NAME
from akash_nb._engine import embedded, llama_server
from akash_nb._engine.class_server import SHARE_ANSWER_TOKENS, SHARE_SLOTS, metrics_values

pytestmark = pytest.mark.live

STORY = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


def akash_nb_env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKASH") and not k.endswith("API_KEY")}
    return env | {"AKASH_NB_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1"}


def akash_nb_command(
    *args: str, state: Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`akash-nb ARGS` in a child process with its own state folder."""
    return run(
        [sys.executable, "-m", "akash_nb.cli", *args],
        env=akash_nb_env(state) | (env or {}),
        cwd=cwd,
        timeout=60,
    )


class Shared:
    """A `serve --share` process, its port, and what it printed: the block (`screen`), the key and the
    `.env` lines for students."""

    def __init__(self, process: subprocess.Popen, port: int, screen: list[str], lines: queue.Queue) -> None:
        self.process, self.port, self.screen, self.lines = process, port, screen, lines
        self.key = next(line.removeprefix("Key: ") for line in screen if line.startswith("Key: "))
        self.env_lines = [line.strip() for line in screen if line.startswith("  AKASH_NB_")]

    def later_lines(self, until, timeout: float = 30) -> list[str]:
        """What it printed after its block, up to the first line for which `until(line)` holds."""
        seen, deadline = [], time.monotonic() + timeout
        while not seen or not until(seen[-1]):
            seen.append(self.lines.get(timeout=max(0.1, deadline - time.monotonic())).rstrip("\n"))
        return seen

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"  # loopback, though it listens everywhere

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def client(self, **kw) -> openai.OpenAI:
        return openai.OpenAI(api_key=self.key, base_url=self.base_url, timeout=120, **kw)


def start_shared(state: Path, *args: str) -> Shared:
    port = llama_server.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "akash_nb.cli", "serve", "--share", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=akash_nb_env(state),
        cwd=state,
        start_new_session=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    screen: list[str] = []
    deadline = time.monotonic() + 120
    try:
        while not screen or not screen[-1].startswith("Plain HTTP"):  # the block's last line
            screen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())).rstrip("\n"))
        return Shared(process, port, screen, lines)  # printed once the server answers: no request here
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
    """The class server at its defaults (SHARE_SLOTS slots), but listening on loopback alone: so the `.env`
    lines it prints point at 127.0.0.1, and the students here can use them as printed."""
    state = tmp_path_factory.mktemp("share-state")
    server = start_shared(state, "--host", "127.0.0.1")
    yield server
    stop(server.process)


@pytest.fixture
def everywhere(tmp_path):
    """The class server as a teacher starts it, on every address (one slot: only its screen is looked at).
    Nothing is sent to it but to 127.0.0.1."""
    server = start_shared(tmp_path, "--slots", "1")
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
    return metrics_values(request(server.url("/metrics"), server.key)[2].decode())


def processes_of(pid: int) -> list[int]:
    """This process and every process it started (share mode runs llama-server as its child)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(p for child in children for p in processes_of(int(child)))]


# --- binding -----------------------------------------------------------------------------------------------


def test_share_mode_listens_on_every_address_and_prints_a_url_for_each(everywhere):
    assert listening_addresses(everywhere.port) == {"00000000"}  # 0.0.0.0
    # what `ip` says this machine's IPv4 addresses are, loopback aside: one URL on the screen for each
    shown = subprocess.run(["ip", "-4", "-o", "address", "show"], capture_output=True, text=True).stdout
    mine = [line.split()[3].split("/")[0] for line in shown.splitlines()]
    expected = {f"http://{a}:{everywhere.port}/v1" for a in mine if not a.startswith("127.")}
    printed = [line.split()[0] for line in everywhere.screen if line.startswith("  http://")]
    assert set(printed) == (expected or {f"http://127.0.0.1:{everywhere.port}/v1"})
    assert f"AKASH_NB_BASE_URL={printed[0]}" in everywhere.env_lines, "students get the first one"


def test_the_screen_is_a_short_block_and_the_engine_log_goes_to_a_file(shared):
    assert len(shared.screen) < 60, "a block that fits a screen, QR code included"
    assert not any("llama" in line.lower() or "srv " in line for line in shared.screen), "no engine logs"
    log = Path(re.search(r"\(engine log: (\S+)\)", shared.screen[0])[1])
    assert "model loaded" in log.read_text(), "the engine's own lines went to its log file"
    assert any(
        line.startswith("Class server: ") and f"{SHARE_SLOTS} answers at a time" in line
        for line in shared.screen
    )
    assert (
        f'A call without max_tokens stops at {SHARE_ANSWER_TOKENS} tokens, with finish_reason "length".'
        in (shared.screen)
    )
    assert shared.env_lines == [
        "AKASH_NB_PROVIDER=openai-compatible",
        f"AKASH_NB_BASE_URL=http://127.0.0.1:{shared.port}/v1",
        f"AKASH_NB_API_KEY={shared.key}",
        f"AKASH_NB_CLASS_SERVER=http://127.0.0.1:{shared.port}/v1",  # named "class server" in banners
    ]
    assert f"  make join URL=http://127.0.0.1:{shared.port}/v1 KEY={shared.key}" in shared.screen
    # letters and digits: typed off a projector, never "-..." that `akash-nb join URL KEY` takes for an option
    assert re.fullmatch(r"[A-Za-z0-9]{22}", shared.key)


def printed_qr(screen: list[str]) -> list[list[bool]]:
    """The QR code on the screen as rows of modules (True: dark), read back from its characters: the code is
    drawn two rows a line, light modules as ink (for a dark terminal), with a border of 2."""
    start = next(i for i, line in enumerate(screen) if line and set(line) == {"█"})
    end = next(i for i in range(start, len(screen)) if not set(screen[i]) <= set("█▀▄ "))
    block = screen[start:end]
    top = {"█": False, "▀": False, "▄": True, " ": True}
    bottom = {"█": False, "▀": True, "▄": False, " ": True}
    rows = []
    for line in block:
        rows += [[top[c] for c in line], [bottom[c] for c in line]]
    return rows[: len(block[0])]  # square: an odd last line draws only its top half


def test_the_qr_code_holds_exactly_the_printed_env_lines(shared):
    expected = segno.make("\n".join(shared.env_lines), error="l", boost_error=False)
    assert printed_qr(shared.screen) == [[bool(m) for m in row] for row in expected.matrix_iter(border=2)]


@pytest.mark.parametrize("flags", [["--host", "0.0.0.0"], ["--port", "8080"], ["--slots", "3"]])
def test_leaving_loopback_takes_the_share_flag(flags, tmp_path):
    done = akash_nb_command("serve", *flags, state=tmp_path)
    assert done.returncode == 2
    assert f"{flags[0]} only with --share" in done.stderr
    assert not list(tmp_path.glob("server-*.json")), "no server was started"


def test_share_mode_keeps_away_from_the_notebooks_server(shared, monkeypatch):
    state = Path(f"/proc/{shared.process.pid}/cwd").resolve()  # started with this AKASH_NB_STATE_DIR
    monkeypatch.setenv("AKASH_NB_STATE_DIR", str(state))
    assert not list(state.glob("server-*.json")), "the share key is never written to the state file"
    assert embedded.running() is None, "notebooks do not take the class server for their own"
    for pid in processes_of(shared.process.pid):
        assert shared.key not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert shared.key not in Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    assert not list(state.glob("*.key")), "the key file is gone once the server has read it"


def test_a_port_in_use_is_a_sentence_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = akash_nb_command("serve", "--share", "--port", str(port), state=tmp_path)
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
    response = client.chat.completions.create(
        model="anything", messages=[{"role": "user", "content": "Hi"}], max_tokens=5, temperature=0
    )
    assert response.model == LOCAL_MODEL_NAME
    assert response.choices[0].message.content


def test_a_call_without_max_tokens_stops_at_the_cap_the_screen_shows(shared):
    """Lesson 01's guide call sends no max_tokens: on the class server it ends at the cap, and says so."""
    response = shared.client(max_retries=0).chat.completions.create(
        model=LOCAL_MODEL_NAME,
        messages=[{"role": "user", "content": "Once upon a time, in a land far, far away"}],
        extra_body={"ignore_eos": True},  # the story never ends by itself: only the cap stops it
    )
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == SHARE_ANSWER_TOKENS


# --- a room at once ----------------------------------------------------------------------------------------

ROOM = 30


def test_a_room_of_thirty_at_once_all_get_answers_none_refused(shared, tmp_path, monkeypatch):
    """Lesson 02's guide cell, streamed by 30 students at the same moment, at the server's defaults, each
    with a client made by `akash_nb.client()` from a `.env` holding exactly the lines the screen shows: all
    30 are answered together, nobody waits for a slot, nobody gets an error. The status line then shows
    the busy slots, the tokens/s and the one address (loopback) the room came from."""
    (tmp_path / ".env").write_text("\n".join(shared.env_lines) + "\n")
    monkeypatch.chdir(tmp_path)
    while not shared.lines.empty():  # status lines from the tests before this one
        shared.lines.get_nowait()
    start = threading.Barrier(ROOM)
    answers: dict[int, str] = {}
    failures: list[BaseException] = []
    busiest = {"requests_processing": 0.0, "requests_deferred": 0.0}
    watching = threading.Event()

    def student(number: int) -> None:
        client = akash_nb.client(max_retries=0, show=False)
        start.wait()
        try:
            stream = client.chat.completions.create(
                model=LOCAL_MODEL_NAME,
                max_tokens=32,
                temperature=0.7,
                stream=True,
                messages=[{"role": "user", "content": f"Student {number}: who won the World Cup in 2022?"}],
            )
            answers[number] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        except BaseException as error:  # noqa: BLE001 (any failure of a student's thread is reported below)
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
    assert 1 < busiest["requests_processing"] <= SHARE_SLOTS
    assert busiest["requests_deferred"] == 0, "a room of 30 never waits for a slot"
    # every status line printed while the room worked, up to the first one after it: idle, one address seen
    pattern = rf"slots busy (\d+)/{SHARE_SLOTS} \| waiting (\d+) \| (\d+) tokens/s \| joined (\d+)"
    readings: list[tuple[int, ...]] = []

    def idle_after_the_room(line: str) -> bool:
        readings.append(tuple(map(int, re.fullmatch(pattern, line).groups())))
        return readings[-1][0] == 0 and max(busy for busy, _, _, _ in readings) > 1

    status = shared.later_lines(idle_after_the_room)  # what it printed while the room worked, then idle
    assert max(busy for busy, _, _, _ in readings) > 1 and readings[-1][3] == 1, status
    assert max(rate for _, _, rate, _ in readings) > 0, status


def test_requests_beyond_the_slots_wait_in_line_and_are_answered(tmp_path):
    small = start_shared(tmp_path, "--slots", "2")
    try:
        answers: list = []

        def student() -> None:
            stream = small.client(max_retries=0).chat.completions.create(
                model=LOCAL_MODEL_NAME,
                max_tokens=150,
                stream=True,
                extra_body={"ignore_eos": True},
                messages=[{"role": "user", "content": "Write a long story about a dragon."}],
            )
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


# --- a student joins -------------------------------------------------------------------------------------


def join(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return akash_nb_command("join", *args, state=cwd, cwd=cwd, env=env)


def test_join_checks_the_server_then_writes_the_printed_lines_keeping_the_others(shared, tmp_path):
    (tmp_path / ".env").write_text("MY_OWN=1\nAKASH_NB_BASE_URL=http://old-server:1/v1\n")
    done = join(f"127.0.0.1:{shared.port}", shared.key, cwd=tmp_path)  # typed without http:// and /v1
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and done.stdout.startswith(
        f"Connected to the class server at {shared.base_url} ({LOCAL_MODEL_NAME}); wrote .env"
    )
    assert shared.key not in done.stdout + done.stderr
    written = (tmp_path / ".env").read_text().splitlines()
    assert sorted(written) == sorted(["MY_OWN=1", *shared.env_lines])
    assert (tmp_path / ".env").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("case", ["wrong key", "nothing there", "not a url"])
def test_join_says_what_went_wrong_in_one_sentence_and_writes_nothing(case, shared, tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        free = closed.getsockname()[1]
    url, key, said = {
        "wrong key": (shared.base_url, "not-the-key", "refused this key (401); copy the key again"),
        "nothing there": (
            f"http://127.0.0.1:{free}/v1",
            shared.key,
            f"Could not reach http://127.0.0.1:{free}",
        ),
        "not a url": ("http://", shared.key, "is not a server address; copy the URL from the teacher"),
    }[case]
    done = join(url, key, cwd=tmp_path)
    assert done.returncode == 2
    assert said in done.stderr and done.stderr.count("\n") == 1 and "Nothing was written." in done.stderr
    assert not (tmp_path / ".env").exists()


def test_join_names_the_variable_that_would_win_over_the_file(shared, tmp_path):
    done = join(shared.base_url, shared.key, cwd=tmp_path, env={"AKASH_NB_PROVIDER": "akashml"})
    assert done.returncode == 0
    assert "environment variable AKASH_NB_PROVIDER wins over it; unset it" in done.stdout
    same = join(shared.base_url, shared.key, cwd=tmp_path, env={"AKASH_NB_PROVIDER": "openai-compatible"})
    assert same.stdout.startswith("Connected"), "the same value in the environment is no conflict"


def test_a_student_who_joins_is_counted_though_join_makes_one_short_request(everywhere, tmp_path):
    """`akash-nb join` asks /v1/models once and hangs up: the status line counts that machine all the same."""
    assert everywhere.later_lines(lambda line: line.startswith("slots busy"))[-1].endswith("joined 0")
    done = join(everywhere.base_url, everywhere.key, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert everywhere.later_lines(lambda line: line.endswith("joined 1"))


ALARMING = ("Traceback", "terminate called", "Aborted", "core dumped", "Segmentation", "Error", "error")


def terminal_rows(text: str, columns: int) -> list[str]:
    """What a terminal `columns` wide shows for `text`: a line rewritten after \\r shows its last version;
    a longer line wraps."""
    rows = []
    for line in text.replace("\r\n", "\n").split("\n"):
        shown = next((part for part in reversed(line.split("\r")) if part.strip()), "")
        rows += [shown[i : i + columns] for i in range(0, max(len(shown), 1), columns)]
    return rows


def test_the_teachers_block_fits_80_by_24_and_ctrl_c_stops_it_quietly(tmp_path):
    """In an 80×24 terminal the URL, the key and the join line are on screen with the status line under
    them (the QR code waits for a taller terminal); Ctrl-C there ends the server and its engine, and the
    teacher sees "Stopped sharing." and nothing alarming."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    port = llama_server.free_port()
    env = {k: v for k, v in akash_nb_env(tmp_path).items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(
        [sys.executable, "-m", "akash_nb.cli", "serve", "--share", "--port", str(port), "--slots", "1"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env | {"PYTHONIOENCODING": "utf-8"},
        cwd=tmp_path,
        start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # noqa: PLW1509 (a terminal of its own)
    )
    os.close(terminal)
    output = bytearray()

    def read_until(done, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while not done(output.decode(errors="replace")) and time.monotonic() < deadline:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed: everything has been read
                break
            if not chunk:
                break
            output.extend(chunk)
        return output.decode(errors="replace")

    try:
        text = read_until(lambda t: "slots busy" in t.rsplit("\n", 1)[-1], 120)
        rows = terminal_rows(text, 80)[-24:]  # what the screen shows now
        key = next(row.removeprefix("Key: ") for row in rows if row.startswith("Key: "))
        assert rows[-1].startswith("slots busy 0/1 | waiting 0 |"), rows
        assert any(row.startswith("  http://") and f":{port}/v1" in row for row in rows), rows
        assert any(row.startswith("  make join URL=http://") and row.endswith(f"KEY={key}") for row in rows)
        assert not any("█" in row for row in rows), "no QR code: it would push the join line off the screen"
        assert "A QR code of the .env lines shows in a terminal of" in text
        engines = [pid for pid in processes_of(process.pid) if pid != process.pid]
        os.write(controller, b"\x03")  # Ctrl-C
        process.wait(30)
        after = read_until(lambda t: False, 5)[len(text) :]
    finally:
        stop(process)
        os.close(controller)
    assert process.returncode == 0
    assert "Stopped sharing." in after
    assert not any(word in after for word in ALARMING), after
    assert not any(Path(f"/proc/{pid}").exists() for pid in engines), "the engine ended with it"
    log = next(tmp_path.glob("share-*.log")).read_text()
    assert not any(word in log for word in ALARMING[:5]), "the engine exited without a crash"


def test_ending_the_share_process_ends_its_engine_too(tmp_path):
    """A closed terminal or a `kill` must not leave llama-server on the room's network with nobody there,
    and the teacher's screen says it stopped, with nothing alarming."""
    small = start_shared(tmp_path, "--host", "127.0.0.1", "--slots", "1")
    try:
        engines = [pid for pid in processes_of(small.process.pid) if pid != small.process.pid]
        assert engines, "llama-server runs as the share process's child"
        os.kill(small.process.pid, signal.SIGTERM)  # the share process alone, not its group
        small.process.wait(30)
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() for pid in engines) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(Path(f"/proc/{pid}").exists() for pid in engines)
        assert status(small.base_url + "/models", small.key) == 0
        said = small.later_lines(lambda line: line == "Stopped sharing.")
        assert small.process.returncode == 0
        assert not any(word in line for line in said for word in ALARMING), said
        log = next(tmp_path.glob("share-*.log")).read_text()
        assert not any(word in log for word in ALARMING[:5]), "the engine exited without a crash"
    finally:
        stop(small.process)
