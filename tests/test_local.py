"""The embedded model server (_engine/embedded.py: llama.cpp's llama-server), with real processes: one
server per configuration, shared by every process, never ended by another checkout's, restarted when dead,
stopped on request, private to this user, and failing fast with one sentence when it cannot start."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import pytest

from akash_nb._core.exceptions import LocalServerError
from akash_nb._core.providers import LOCAL_MODEL_NAME
from akash_nb._engine import builds, embedded, llama_server
from akash_nb._engine import weights as model

pytestmark = pytest.mark.live

PRINT_SERVER = "from akash_nb._engine import embedded; s = embedded.ensure_server(); print(s.pid, s.port)"


def ensure_in_subprocess(state: Path) -> subprocess.Popen:
    env = {**os.environ, "AKASH_NB_STATE_DIR": str(state)}
    return subprocess.Popen(
        [sys.executable, "-c", PRINT_SERVER],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def pid_and_port(process: subprocess.Popen) -> tuple[int, int]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    pid, port = out.split()
    return int(pid), int(port)


def servers_in(state: Path) -> list[int]:
    """The pids of engine processes (llama-server, or the wheel's server) running in this state folder
    (their cwd)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            ours = argv[0].endswith(b"llama-server") or builds.WHEEL_MODULE.encode() in argv
            if ours and (entry / "cwd").resolve() == state:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not llama_server.pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def openai_client(server: embedded.Server) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.key.reveal(), base_url=server.base_url, max_retries=0, timeout=60)


def say_hi(server: embedded.Server, model: str = LOCAL_MODEL_NAME) -> str:
    response = openai_client(server).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=3, temperature=0
    )
    return response.model


# --- starting, sharing, restarting, stopping -------------------------------------------------------------


def test_ensure_server_starts_the_embedded_model(state_dir):
    started = time.monotonic()
    server = embedded.ensure_server()
    assert time.monotonic() - started < 30
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert server.model == LOCAL_MODEL_NAME
    assert Path(server.model_path) == model.model_file()
    assert embedded.running() == server
    assert [m.id for m in openai_client(server).models.list()] == [LOCAL_MODEL_NAME]
    assert say_hi(server) == LOCAL_MODEL_NAME


def test_a_second_process_reuses_the_running_server(state_dir):
    server = embedded.ensure_server()
    assert pid_and_port(ensure_in_subprocess(state_dir)) == (server.pid, server.port)
    assert embedded.ensure_server() == server
    assert servers_in(state_dir) == [server.pid]


def test_two_processes_starting_at_once_make_one_server(state_dir):
    first, second = ensure_in_subprocess(state_dir), ensure_in_subprocess(state_dir)
    assert pid_and_port(first) == pid_and_port(second)
    assert servers_in(state_dir) == [embedded.running().pid]


def test_a_killed_server_is_restarted(state_dir):
    old = embedded.ensure_server()
    os.kill(old.pid, signal.SIGKILL)
    assert gone(old.pid)
    assert embedded.running() is None
    new = embedded.ensure_server()
    assert new.pid != old.pid and new.key != old.key
    assert say_hi(new) == LOCAL_MODEL_NAME


def test_stop_ends_the_server_and_removes_its_state(state_dir):
    server = embedded.ensure_server()
    assert embedded.stop() is True
    assert gone(server.pid, within=1.0)
    assert not embedded.state_file(server.config).exists()
    assert embedded.running() is None
    assert embedded.stop() is False


def test_stop_never_kills_a_stranger_that_got_the_recorded_pid(state_dir):
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        config = embedded._current_config()
        stale = embedded.Server(
            stranger.pid,
            llama_server.free_port(),
            embedded.Secret("old-key"),
            LOCAL_MODEL_NAME,
            "/nowhere.gguf",
            str(state_dir / "server.log"),
            config,
        )
        embedded._write_state(stale)
        assert embedded.stop() is False
        assert stranger.poll() is None
        embedded._write_state(stale)
        server = embedded.ensure_server()  # a stale record is replaced, the stranger left alone
        assert server.pid != stranger.pid and stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def long_stream(server: embedded.Server):
    """A streamed answer of up to 300 tokens (about 3 s on 2 cores)."""
    return openai_client(server).chat.completions.create(
        model=server.model,
        messages=[{"role": "user", "content": "Write a long story about the sea."}],
        max_tokens=300,
        temperature=0,
        stream=True,
    )


def test_another_model_gets_its_own_server_and_never_ends_this_one_mid_answer(
    state_dir, monkeypatch, tmp_path
):
    """Two checkouts (two venvs, so two copies of the model file) on one machine, one state folder."""
    first = embedded.ensure_server()
    copy = tmp_path / "Other-Model.gguf"
    copy.write_bytes(Path(first.model_path).read_bytes())
    stream = long_stream(first)
    chunks = [next(iter(stream))]
    monkeypatch.setenv("AKASH_NB_LOCAL_MODEL", str(copy))
    second = ensure_in_subprocess(state_dir)  # the other checkout's kernel
    second_pid, second_port = pid_and_port(second)
    chunks.extend(stream)  # this answer goes on to its end
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] in (
        ["stop"],
        ["length"],
    ), "the first server's answer was cut"
    assert (second_pid, second_port) != (first.pid, first.port)
    assert llama_server.pid_alive(first.pid) and say_hi(first) == LOCAL_MODEL_NAME
    other = embedded.ensure_server()
    assert (other.pid, other.model) == (second_pid, "Other-Model")
    assert say_hi(other, model="whatever") == "Other-Model"
    assert embedded.stop() is True  # stops this configuration's server only
    assert gone(other.pid) and llama_server.pid_alive(first.pid)
    monkeypatch.delenv("AKASH_NB_LOCAL_MODEL")
    assert embedded.running() == first


def second_venv(where: Path) -> Path:
    """A real second virtual environment that sees this one's packages (a second checkout's .venv)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    site = next(where.glob("lib/python*/site-packages"))
    here = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_relative_to(sys.prefix))
    (site / "parent.pth").write_text(here + "\n" + str(Path(__file__).resolve().parent.parent) + "\n")
    return where / "bin" / "python"


def test_two_venvs_get_their_own_servers_and_one_stop_never_ends_the_others_answer(state_dir, tmp_path):
    """Two clones, each with its own .venv, share the cached engine and model file and one state folder."""
    first = embedded.ensure_server()
    python = second_venv(tmp_path / "other-venv")
    env = {**os.environ, "AKASH_NB_STATE_DIR": str(state_dir)}
    stream = long_stream(first)
    chunks = [next(iter(stream))]
    other = subprocess.run(
        [str(python), "-c", PRINT_SERVER], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    other_pid = int(other.stdout.split()[0])
    assert other_pid != first.pid, "the other checkout reused (so could stop) this checkout's server"
    stopped = subprocess.run(
        [str(python), "-m", "akash_nb.cli", "stop"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Stopped" in stopped.stdout and gone(other_pid)
    chunks.extend(stream)  # this checkout's answer goes on to its end
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] in (
        ["stop"],
        ["length"],
    ), "this checkout's answer was cut by the other checkout's stop"
    assert embedded.running() == first


def test_stop_all_stops_every_configuration(state_dir, monkeypatch, tmp_path):
    first = embedded.ensure_server()
    copy = tmp_path / "Other-Model.gguf"
    copy.write_bytes(Path(first.model_path).read_bytes())
    monkeypatch.setenv("AKASH_NB_LOCAL_MODEL", str(copy))
    second = embedded.ensure_server()
    assert embedded.stop_all() == 2
    assert gone(first.pid) and gone(second.pid)
    assert servers_in(state_dir) == []


# --- honest answers, and a busy server is still alive ------------------------------------------------------


def test_a_response_names_the_model_that_answered_not_the_one_asked_for(local_env):
    server = embedded.ensure_server()
    client = openai_client(server)
    assert say_hi(server, model="Meta-Llama-3-1-8B-Instruct-FP8") == LOCAL_MODEL_NAME
    stream = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], max_tokens=3, stream=True
    )
    assert {chunk.model for chunk in stream} == {LOCAL_MODEL_NAME}
    assert client.completions.create(model="x", prompt="Hi", max_tokens=2).model == LOCAL_MODEL_NAME


def test_a_server_busy_generating_is_reused_not_replaced(local_env):
    """The liveness check must not wait for a running generation (or a kernel would start a second)."""
    server = embedded.ensure_server()
    first_token, done = threading.Event(), threading.Event()

    def generate() -> None:
        with openai_client(server).chat.completions.create(
            model=LOCAL_MODEL_NAME,
            messages=[{"role": "user", "content": "Write a long story."}],
            max_tokens=400,
            stream=True,
        ) as stream:
            for _ in stream:
                first_token.set()
                if done.is_set():
                    break

    worker = threading.Thread(target=generate)
    worker.start()
    try:
        assert first_token.wait(30)
        started = time.monotonic()
        assert embedded.running() == server
        assert time.monotonic() - started < 1.0
        assert pid_and_port(ensure_in_subprocess(local_env)) == (server.pid, server.port)
        assert worker.is_alive()  # still generating: the checks above did not wait for it
    finally:
        done.set()
        worker.join(60)


# --- failing fast, in one sentence ------------------------------------------------------------------------


def assert_fast_sentence(call, started: float, *fragments: str) -> str:
    with pytest.raises(LocalServerError) as caught:
        call()
    assert time.monotonic() - started < 15
    sentence = caught.value.sentence.splitlines()[0]  # a log tail may follow the sentence
    assert sentence[0].isupper() and sentence.rstrip(":").endswith("."), sentence
    for fragment in fragments:
        assert fragment in sentence, sentence
    return sentence


def test_a_missing_model_file_is_a_sentence(state_dir, monkeypatch, tmp_path):
    missing = tmp_path / "missing.gguf"
    monkeypatch.setenv("AKASH_NB_LOCAL_MODEL", str(missing))
    assert_fast_sentence(
        embedded.ensure_server, time.monotonic(), str(missing), "does not exist", "AKASH_NB_LOCAL_MODEL"
    )


def test_a_file_that_is_not_gguf_is_a_sentence(state_dir, monkeypatch, tmp_path):
    text = tmp_path / "model.bin"
    text.write_text("not a model")
    monkeypatch.setenv("AKASH_NB_LOCAL_MODEL", str(text))
    assert_fast_sentence(embedded.ensure_server, time.monotonic(), str(text), "not a GGUF file")


def test_a_port_in_use_is_a_sentence_naming_it(state_dir, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("AKASH_NB_LOCAL_PORT", str(port))
        assert_fast_sentence(embedded.ensure_server, time.monotonic(), f"Port {port}", "already in use")
    assert servers_in(state_dir) == []


def test_a_port_that_is_not_a_number_is_a_sentence(state_dir, monkeypatch):
    monkeypatch.setenv("AKASH_NB_LOCAL_PORT", "eighty")
    assert_fast_sentence(embedded.ensure_server, time.monotonic(), "'eighty'", "AKASH_NB_LOCAL_PORT")


def test_a_fixed_free_port_is_used(state_dir, monkeypatch):
    port = llama_server.free_port()
    monkeypatch.setenv("AKASH_NB_LOCAL_PORT", str(port))
    assert embedded.ensure_server().port == port


def test_a_model_file_llama_cpp_rejects_says_the_server_exited_and_where_its_log_is(
    state_dir, monkeypatch, tmp_path
):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGUF" + secrets.token_bytes(4096))
    monkeypatch.setenv("AKASH_NB_LOCAL_MODEL", str(fake))
    sentence = assert_fast_sentence(
        embedded.ensure_server, time.monotonic(), "exited", str(state_dir), "server-", ".log"
    )
    assert "while starting" in sentence
    assert list(state_dir.glob("server-*.json")) == []


def test_a_server_that_is_not_ready_in_time_is_stopped_and_says_how_long_it_waited(state_dir):
    sentence = assert_fast_sentence(
        lambda: embedded.ensure_server(timeout=0.3),
        time.monotonic(),
        "did not become ready in 0.3 s",
        str(state_dir),
        ".log",
    )
    assert "stopped" in sentence
    assert servers_in(state_dir) == []
    assert list(state_dir.glob("server-*.json")) == []


def test_the_state_folder_follows_akash_nb_state_dir_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("AKASH_NB_STATE_DIR", str(tmp_path / "explicit"))
    assert embedded.state_dir() == tmp_path / "explicit"
    monkeypatch.delenv("AKASH_NB_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert embedded.state_dir() == tmp_path / "xdg" / "akash-nb"


def test_a_client_that_leaves_mid_stream_frees_the_model_at_once(local_env):
    server = embedded.ensure_server()
    client = openai.OpenAI(base_url=server.base_url, api_key=server.key.reveal(), max_retries=0, timeout=60)
    stream = client.chat.completions.create(
        model=server.model,
        max_tokens=2000,
        stream=True,
        messages=[{"role": "user", "content": "Write a very long essay about the sea."}],
    )
    for number, _chunk in enumerate(stream):
        if number == 3:
            break
    stream.close()
    started = time.monotonic()
    client.chat.completions.create(
        model=server.model, max_tokens=1, messages=[{"role": "user", "content": "Hi"}]
    )
    assert time.monotonic() - started < 5.0  # not after the ~15 s the abandoned answer would have taken


def test_a_request_without_max_tokens_ends_at_the_default_answer_length(local_env):
    """The guide's first call sets no max_tokens: the answer still ends, honestly marked "length"."""
    server = embedded.ensure_server()
    response = openai_client(server).chat.completions.create(
        model=server.model,
        messages=[{"role": "user", "content": "Write a long story about the sea."}],
        extra_body={"ignore_eos": True},
    )
    assert response.usage.completion_tokens == llama_server.DEFAULT_ANSWER_TOKENS
    assert response.choices[0].finish_reason == "length"
