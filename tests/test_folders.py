"""The per-user folders: the embedded server's state (`local.state_dir()`) and the cache of engine builds and
the model file (`engine.cache_dir()`). Each comes from its variable, else from platformdirs' per-user folder
for "akash-nb" (on Linux the XDG one, the same as before platformdirs)."""

from __future__ import annotations

import sys

import platformdirs
import platformdirs.macos
import pytest

from akash_nb._engine import builds, embedded, weights

LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG layout is Linux's")


@pytest.fixture
def no_overrides(monkeypatch):
    for name in ("AKASH_NB_STATE_DIR", "AKASH_NB_CACHE_DIR", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def macos(monkeypatch, tmp_path, no_overrides):
    """platformdirs' macOS layout, made to run here, in a home of the test's own."""
    monkeypatch.setattr(platformdirs, "PlatformDirs", platformdirs.macos.MacOS)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


# --- the state folder ------------------------------------------------------------------------------------


def test_akash_nb_state_dir_comes_first(monkeypatch, tmp_path, no_overrides):
    monkeypatch.setattr(platformdirs, "user_state_path", lambda *a, **k: tmp_path / "per-user")
    monkeypatch.setenv("AKASH_NB_STATE_DIR", str(tmp_path / "explicit"))
    assert embedded.state_dir() == tmp_path / "explicit"
    assert not (tmp_path / "per-user").exists()


def test_else_the_state_folder_is_platformdirs_per_user_state_folder(monkeypatch, tmp_path, no_overrides):
    asked: list[tuple] = []
    monkeypatch.setattr(
        platformdirs,
        "user_state_path",
        lambda *a, **k: asked.append((a, k)) or tmp_path / "u",
    )
    assert embedded.state_dir() == tmp_path / "u"
    assert (tmp_path / "u").is_dir()
    assert asked == [(("akash-nb",), {"appauthor": False})]


@LINUX_ONLY
def test_on_linux_the_state_folder_is_still_xdg_then_local_state(monkeypatch, tmp_path, no_overrides):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert embedded.state_dir() == tmp_path / "xdg" / "akash-nb"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert embedded.state_dir() == tmp_path / "home" / ".local" / "state" / "akash-nb"


def test_on_macos_the_state_folder_is_in_application_support(macos):
    assert embedded.state_dir() == macos / "Library" / "Application Support" / "akash-nb"


# --- the cache folder ------------------------------------------------------------------------------------


def test_akash_nb_cache_dir_comes_first(monkeypatch, tmp_path, no_overrides):
    monkeypatch.setattr(platformdirs, "user_cache_path", lambda *a, **k: tmp_path / "per-user")
    monkeypatch.setenv("AKASH_NB_CACHE_DIR", str(tmp_path / "explicit"))
    assert builds.cache_dir() == tmp_path / "explicit"
    assert weights.cached_model().is_relative_to(tmp_path / "explicit")


def test_else_the_cache_is_platformdirs_per_user_cache_folder(monkeypatch, tmp_path, no_overrides):
    asked: list[tuple] = []
    monkeypatch.setattr(
        platformdirs,
        "user_cache_path",
        lambda *a, **k: asked.append((a, k)) or tmp_path / "u",
    )
    assert builds.cache_dir() == tmp_path / "u"
    assert builds.build_dir().parent == tmp_path / "u"
    assert weights.cached_model().is_relative_to(tmp_path / "u")
    assert asked[0] == (("akash-nb",), {"appauthor": False})


@LINUX_ONLY
def test_on_linux_the_cache_is_still_xdg_cache_home_then_dot_cache(monkeypatch, tmp_path, no_overrides):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert builds.cache_dir() == tmp_path / "xdg" / "akash-nb"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert builds.cache_dir() == tmp_path / "home" / ".cache" / "akash-nb"


def test_on_macos_the_cache_is_in_library_caches(macos):
    assert builds.cache_dir() == macos / "Library" / "Caches" / "akash-nb"
