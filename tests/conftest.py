"""Shared fixtures. Each test gets an environment with no provider configured and its own state folder,
so nothing a developer has set (keys, a running lab server) leaks into a test, or out of one; and a test
not marked `live` cannot start the embedded model (NOT_LIVE below)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultserver import FaultServer
from hypothesis import HealthCheck, settings
from standin import program

from akash_nb._core import config
from akash_nb._engine import builds, embedded
from akash_nb._engine import weights as model

pytest_plugins = ["pytester"]  # tests/test_markers.py runs a session of its own to prove the guard below

CONFIG_VARIABLES = (
    *config.VARIABLES,
    "AKASH_NB_LOCAL_PORT",
    "AKASH_NB_RECORDINGS",
    "CI",
    "AKASH_NB_REPLAY_MODE",
    "AKASH_NB_RECORD_UPSTREAM",
    "AKASH_NB_REPLAY_USED",
)


# --- the `live` marker enforces itself ----------------------------------------------------------------------
# A test not marked `live` finds, where akash_nb looks for llama-server (AKASH_NB_LLAMA_SERVER, and first on
# PATH for a child process whose environment drops AKASH_*), the prebuilt engine (an xllamacpp first on
# PYTHONPATH) and the model file (AKASH_NB_LOCAL_MODEL), a
# stand-in that answers `--version` and `--help` but exits with NOT_LIVE as soon as it is started as a
# server. It is set in os.environ before the test's fixtures are set up, so module and session fixtures,
# subprocesses and notebook kernels inherit it; a test that tests those variables overrides them with
# monkeypatch. A live test gets the developer's own AKASH_NB_LLAMA_SERVER and PATH back and no
# AKASH_NB_LOCAL_MODEL (the lessons' SmolLM2, whatever the developer's shell says).
NOT_LIVE = "this test starts the embedded model: mark it @pytest.mark.live"
GUARD_FOLDER = "akash-nb-not-live-"  # the stand-ins' temporary folder's name starts so
GUARD_EXIT = 97
_developers: dict[str, str | None] = {}  # what a live test finds
_before: dict[str, str | None] = {}  # what the shell had, given back when the session ends
_guard: dict[str, str] = {}


def pytest_configure(config):
    folder = Path(tempfile.mkdtemp(prefix=GUARD_FOLDER))
    # Not llama.cpp: a stand-in that answers like one, then refuses to serve (tests/standin.py: a `#!/bin/sh`
    # file on Linux and macOS, a .cmd file on Windows).
    server = program(
        folder,
        "llama-server",
        answers={
            "--version": "version: 0 (tests/conftest.py's stand-in, not llama.cpp)",
            "--help": " ".join(builds.REQUIRED_OPTIONS),
        },
        stderr=NOT_LIVE,
        code=GUARD_EXIT,
    )
    weights = folder / model.GGUF_NAME  # SmolLM2's own file name: the served model's name is unchanged
    weights.write_bytes(b"GGUF" + bytes(60))
    # The prebuilt engine too, for a test that unsets AKASH_NB_LLAMA_SERVER: first on PYTHONPATH, a stand-in
    # xllamacpp that refuses at import, so _engine/wheel_server.py exits as the stand-in llama-server does.
    modules = folder / "python"
    (modules / builds.WHEEL_PACKAGE).mkdir(parents=True)
    (modules / builds.WHEEL_PACKAGE / "__init__.py").write_text(
        f'"""Written by tests/conftest.py: not xllamacpp."""\nimport sys\n\n'
        f"print({NOT_LIVE!r}, file=sys.stderr)\nraise SystemExit({GUARD_EXIT})\n"
    )
    path = os.environ.get("PATH", os.defpath)
    python_path = os.pathsep.join(p for p in (str(modules), os.environ.get("PYTHONPATH")) if p)
    _guard.update(
        {
            builds.VARIABLE: str(server),
            model.VARIABLE: str(weights),
            "PATH": f"{folder}{os.pathsep}{path}",
            "PYTHONPATH": python_path,
        }
    )
    _before.update({name: os.environ.get(name) for name in _guard})
    _developers.update(_before, **{model.VARIABLE: None})


def _put(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def pytest_unconfigure(config):
    for name, value in _before.items():
        _put(name, value)
    if _guard:
        shutil.rmtree(Path(_guard[builds.VARIABLE]).parent, ignore_errors=True)


def is_live(item: pytest.Item) -> bool:
    return item.get_closest_marker("live") is not None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before any fixture of this test: the stand-ins for a test not marked live, the real lookup for one
    that is."""
    live = is_live(item)
    for name, guard in _guard.items():
        _put(name, _developers[name] if live else guard)
    if not live and "shared_local_server" in getattr(item, "fixturenames", ()):
        pytest.fail(
            f"{item.nodeid} uses the session's embedded server (shared_local_server): {NOT_LIVE}",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No provider configuration from the developer's shell, and no .env found above the test's cwd."""
    for name in CONFIG_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def state_dir(monkeypatch, tmp_path) -> Path:
    """A private state folder for the embedded server; any server started in it is stopped afterwards."""
    folder = tmp_path / "state"
    monkeypatch.setenv("AKASH_NB_STATE_DIR", str(folder))
    yield folder
    embedded.stop_all()  # every server started in this test's own folder, whatever model it served


@pytest.fixture(scope="session")
def shared_local_server(tmp_path_factory):
    """One real embedded llama.cpp server for the whole session (starting one costs about a second).

    Yields the state folder; tests that use it set AKASH_NB_STATE_DIR to it."""
    folder = tmp_path_factory.mktemp("shared-state")
    with pytest.MonkeyPatch.context() as patch:  # session-scoped, so not the monkeypatch fixture
        patch.setenv("AKASH_NB_STATE_DIR", str(folder))
        embedded.ensure_server()
        try:
            yield folder
        finally:
            embedded.stop_all()


@pytest.fixture
def local_env(shared_local_server, monkeypatch) -> Path:
    """Point this test at the session's shared embedded server."""
    monkeypatch.setenv("AKASH_NB_STATE_DIR", str(shared_local_server))
    return shared_local_server


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    """One misbehaving loopback server (tests/faultserver.py) for a whole test file: each test says how it
    should misbehave with `server.behave(...)`."""
    with FaultServer() as running:
        yield running


# Hypothesis: repeatable in CI (derandomize: the same examples every run), enough examples per property to
# matter, no per-example deadline (a loopback request's time varies on a busy 2-core machine).
# HYPOTHESIS_PROFILE=explore runs 1000 random examples a property, to look for new cases by hand.
EVERY_PROFILE = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
settings.register_profile("ci", max_examples=100, derandomize=True, print_blob=True, **EVERY_PROFILE)
settings.register_profile("explore", max_examples=1000, **EVERY_PROFILE)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
