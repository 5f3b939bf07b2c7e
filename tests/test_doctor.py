"""`akash-nb doctor` on a student's laptop: the class server is checked for real, and the embedded model the
lessons do not use is left alone — no model file fetched, no engine built, none started."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from faultserver import MODEL, FaultServer
from processes import environment_without, run
from standin import program

from akash_nb import cli
from akash_nb._engine import builds, weights


def class_server_env(folder: Path, url: str) -> None:
    """The `.env` that `akash-nb join` writes for a class server."""
    (folder / ".env").write_text(
        f"AKASH_NB_PROVIDER=openai-compatible\nAKASH_NB_BASE_URL={url}\nAKASH_NB_API_KEY=class-key\n"
    )


def contents(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_doctor_on_a_class_server_fetches_builds_and_starts_nothing(tmp_path):
    """The real CLI, with an engine on PATH that a doctor probing the embedded model would start, and an
    empty cache it would fetch the model into."""
    cache, state, work = tmp_path / "cache", tmp_path / "state", tmp_path / "lessons"
    work.mkdir()
    starts = tmp_path / "engine-started.jsonl"
    found = program(
        tmp_path / "bin",
        "llama-server",
        answers={"--version": "version: 9999 (stand-in)", "--help": " ".join(builds.REQUIRED_OPTIONS)},
        code=1,
        record=starts,
    )
    with FaultServer() as server:
        class_server_env(work, server.url)
        done = run(
            [sys.executable, "-m", "akash_nb.cli", "doctor"],
            cwd=work,
            timeout=120,
            env=environment_without()
            | {
                "AKASH_NB_CACHE_DIR": str(cache),
                "AKASH_NB_STATE_DIR": str(state),
                "PATH": str(found.parent),
                "CI": "1",
            },
        )
        asked = [(method, path) for method, path, _, _ in server.requests]
    assert done.returncode == 0, done.stdout + done.stderr
    assert ("GET", "/v1/models") in asked and ("POST", "/v1/chat/completions") in asked
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[2:7]}
    assert f"yes, {MODEL} answered" in rows["openai-compatible"]
    assert "not checked: the lessons use openai-compatible" in rows["local"]
    assert done.stdout.rstrip().endswith("it works.")
    assert contents(cache) == [], "no model fetched, no engine built"
    assert not starts.exists(), "no engine started"
    assert not any(name.startswith(("server-", "share-")) for name in contents(state)), "no server recorded"


@pytest.fixture
def student_set(monkeypatch, tmp_path) -> Path:
    """This Python as the student set: no prebuilt engine, no cmake, no llama-server anywhere, no model
    file, an empty cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("AKASH_NB_CACHE_DIR", str(cache))
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    monkeypatch.delenv(builds.VARIABLE, raising=False)
    monkeypatch.delenv(weights.VARIABLE, raising=False)
    monkeypatch.setattr(builds, "wheel_version", lambda: None)
    monkeypatch.setattr(builds, "_tool", lambda name: None)
    return cache


def test_the_student_sets_row_says_not_installed_and_the_exit_code_follows_the_class_server(
    student_set, tmp_path, capsys
):
    with FaultServer() as server:
        class_server_env(tmp_path, server.url)
        assert cli.main(["doctor"]) == 0
        out = capsys.readouterr().out
        server.behave("status", status=503)
        assert cli.main(["doctor"]) == 1, "the class server failing is what counts"
    local = next(line for line in out.splitlines() if line.startswith("local "))
    assert (
        "not installed (student set)" in local and "not checked: the lessons use openai-compatible" in local
    )
    assert contents(student_set) == []


def test_recording_from_the_embedded_model_is_not_checked_either(student_set, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AKASH_NB_REPLAY_MODE", "record")  # replay's upstream would be the embedded model
    with FaultServer() as server:
        class_server_env(tmp_path, server.url)
        assert cli.main(["doctor"]) == 0
    replay = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("replay "))
    assert "not checked: the lessons use openai-compatible" in replay
    assert contents(student_set) == []


def test_the_row_says_what_is_installed_without_starting_it(monkeypatch, tmp_path, capsys):
    """With the embedded model's set installed (the conftest stand-ins: an engine and a model file) and a
    class server configured, the row says so, and the stand-in engine that refuses to serve is never run
    as a server (it would make the row fail with NOT_LIVE)."""
    with FaultServer() as server:
        class_server_env(tmp_path, server.url)
        assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    local = next(line for line in out.splitlines() if line.startswith("local "))
    assert "installed, not started" in local
    assert "mark it @pytest.mark.live" not in out


def test_an_unreadable_engine_setting_is_the_rows_sentence_not_a_crash(
    student_set, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv(builds.ROUTE_VARIABLE, "native")
    with FaultServer() as server:
        class_server_env(tmp_path, server.url)
        assert cli.main(["doctor"]) == 0
    local = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("local "))
    assert "no: AKASH_NB_ENGINE is 'native'" in local
