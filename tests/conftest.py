"""Shared fixtures. Each test gets an environment with no provider configured and its own state folder,
so nothing a developer has set (keys, a running lab server) leaks into a test, or out of one."""

from __future__ import annotations

from pathlib import Path

import pytest

from akash_nb import local

CONFIG_VARIABLES = (
    "AKASH_NB_PROVIDER", "AKASH_NB_BASE_URL", "AKASH_NB_API_KEY", "AKASH_NB_MODEL", "AKASHML_API_KEY",
    "AKASH_API_KEY", "AKASH_NB_LOCAL_MODEL", "AKASH_NB_LOCAL_PORT", "AKASH_NB_RECORDINGS", "CI",
    "AKASH_NB_REPLAY_MODE", "AKASH_NB_RECORD_UPSTREAM", "AKASH_NB_REPLAY_USED",
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
    local.stop_all()  # every server started in this test's own folder, whatever model it served


@pytest.fixture(scope="session")
def shared_local_server(tmp_path_factory):
    """One real embedded llama.cpp server for the whole session (starting one costs about a second).

    Yields the state folder; tests that use it set AKASH_NB_STATE_DIR to it."""
    folder = tmp_path_factory.mktemp("shared-state")
    with pytest.MonkeyPatch.context() as patch:  # session-scoped, so not the monkeypatch fixture
        patch.setenv("AKASH_NB_STATE_DIR", str(folder))
        local.ensure_server()
        try:
            yield folder
        finally:
            local.stop_all()


@pytest.fixture
def local_env(shared_local_server, monkeypatch) -> Path:
    """Point this test at the session's shared embedded server."""
    monkeypatch.setenv("AKASH_NB_STATE_DIR", str(shared_local_server))
    return shared_local_server


# Hypothesis: repeatable in CI (derandomize: the same examples every run), enough examples per property to
# matter, no per-example deadline (a loopback request's time varies on a busy 2-core machine).
# HYPOTHESIS_PROFILE=explore runs 1000 random examples a property, to look for new cases by hand.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("explore", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(__import__("os").environ.get("HYPOTHESIS_PROFILE", "ci"))
