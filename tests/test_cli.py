"""`akash-nb`: doctor's one screen, serve and stop, run, and errors as one line."""

from __future__ import annotations

import sys

import pytest
from processes import environment_without, run


def akash_nb(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    full = environment_without() | (env or {})
    return run([sys.executable, "-m", "akash_nb.cli", *args], env=full, timeout=timeout)


@pytest.mark.live
def test_doctor_shows_every_provider_on_one_screen(local_env):
    done = akash_nb("doctor", env={"AKASH_NB_STATE_DIR": str(local_env), "CI": "1"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] == ["provider", "configured"]
    rows = {line.split()[0]: line for line in lines[2:7]}
    assert set(rows) == {"local", "akashml", "akash-chat", "openai-compatible", "replay"}
    assert "yes, SmolLM2-135M-Instruct answered" in rows["local"]
    assert "set AKASHML_API_KEY" in rows["akashml"]
    assert "set AKASH_API_KEY" in rows["akash-chat"]
    assert "AKASH_NB_BASE_URL" in done.stdout
    assert " s" in rows["local"], "the one-token latency is shown"


@pytest.mark.live
def test_doctor_never_prints_a_key(local_env):
    key = "akml-" + "x" * 30
    done = akash_nb(
        "doctor",
        env={
            "AKASH_NB_STATE_DIR": str(local_env),
            "CI": "1",
            "AKASH_NB_BASE_URL": "http://127.0.0.1:9/v1",
            "AKASH_NB_API_KEY": key,
        },
    )
    assert key not in done.stdout + done.stderr
    assert "openai-compatible" in done.stdout


@pytest.mark.live
def test_serve_hides_the_key_unless_asked_and_stop_ends_the_server(state_dir):
    env = {"AKASH_NB_STATE_DIR": str(state_dir)}
    served = akash_nb("serve", env=env)
    assert served.returncode == 0, served.stderr
    assert "http://127.0.0.1:" in served.stdout and "Key:" not in served.stdout
    shown = akash_nb("serve", "--print-key", env=env)
    assert "Key: " in shown.stdout
    stopped = akash_nb("stop", env=env)
    assert "Stopped" in stopped.stdout
    assert "No embedded model server" in akash_nb("stop", env=env).stdout


def test_a_bad_configuration_is_one_line_and_exit_2():
    done = akash_nb("lab", env={"AKASH_NB_PROVIDER": "nonsense"})
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "Unknown provider 'nonsense'" in done.stderr and "local" in done.stderr


def test_options_akash_nb_does_not_know_go_to_jupyter_lab_and_nowhere_else():
    done = akash_nb("stop", "--port", "8888")
    assert done.returncode == 2 and "unrecognized arguments: --port 8888" in done.stderr
    # `akash-nb lab --no-browser --port N` passes them on: the lab subcommand alone accepts unknown options
    from akash_nb import cli

    args, unknown = cli.build_parser().parse_known_args(["lab", "--no-browser", "--port", "8899"])
    assert args.command == "lab" and unknown == ["--no-browser", "--port", "8899"]
