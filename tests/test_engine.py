"""Finding or building llama-server (_engine/builds.py): the lookup order, and unpacking the pinned source.

The programs found on PATH here are small stand-ins (tests/standin.py) that answer `--version` and `--help`
as a llama-server would (or as an old one would), so the order is tested without a second llama.cpp build;
the real build is what the weekly source-build workflow runs."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from standin import program

from akash_nb._core.exceptions import LocalServerError
from akash_nb._engine import builds as engine

HELP_TODAY = "\n".join(f"{option} N   something" for option in engine.REQUIRED_OPTIONS)


def fake_server(folder: Path, *, help_text: str, version: str = "version: 9999 (fake)") -> Path:
    return program(folder, "llama-server", answers={"--version": version, "--help": help_text})


# A build's stand-in is a .cmd file on Windows, where the cache folder holds llama-server.exe.
NOT_ON_WINDOWS = pytest.mark.skipif(
    sys.platform == "win32", reason="a stand-in for a build cannot be an .exe (tests/standin.py)"
)


@pytest.fixture
def empty_cache(monkeypatch, tmp_path) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("AKASH_NB_CACHE_DIR", str(folder))
    monkeypatch.delenv(engine.VARIABLE, raising=False)
    monkeypatch.delenv(engine.ROUTE_VARIABLE, raising=False)
    monkeypatch.setenv("PATH", os.defpath)
    return folder


@pytest.fixture
def no_wheel(monkeypatch):
    """This Python without the prebuilt engine installed."""
    monkeypatch.setattr(engine, "wheel_version", lambda: None)


@pytest.fixture
def builds(monkeypatch) -> list[str]:
    """`build()` replaced by one that writes a stand-in llama-server where the real build puts it; the list
    records each build."""
    done: list[str] = []

    def build(progress=None) -> Path:
        done.append("built")
        return fake_server(engine.build_dir(), help_text=HELP_TODAY, version="version: 1 (built here)")

    monkeypatch.setattr(engine, "build", build)
    return done


def test_the_variable_wins_and_a_wrong_one_is_a_sentence_naming_it(empty_cache, monkeypatch, tmp_path):
    mine = fake_server(tmp_path / "mine", help_text="")  # the variable is trusted: no option check
    monkeypatch.setenv(engine.VARIABLE, str(mine))
    monkeypatch.setenv(engine.ROUTE_VARIABLE, "build")  # the explicit program wins over the route too
    found = engine.find()
    assert (found.server, found.source, found.version) == (mine, engine.VARIABLE, "9999 (fake)")
    monkeypatch.setenv(engine.VARIABLE, str(tmp_path / "nowhere"))
    with pytest.raises(LocalServerError, match=engine.VARIABLE) as caught:
        engine.find()
    assert "unset it" in caught.value.sentence


def test_a_llama_server_on_path_is_used_before_the_wheel_when_it_takes_our_options(
    empty_cache, monkeypatch, tmp_path
):
    program = fake_server(tmp_path / "bin", help_text=HELP_TODAY)
    monkeypatch.setenv("PATH", f"{program.parent}{os.pathsep}{os.defpath}")
    found = engine.find()
    assert (found.server, found.source, found.args) == (program, "PATH", ())


def test_an_old_llama_server_on_path_is_passed_over_for_the_wheel(empty_cache, monkeypatch, tmp_path):
    old = fake_server(tmp_path / "bin", help_text=HELP_TODAY.replace("--api-key-file", "--api-key"))
    monkeypatch.setenv("PATH", f"{old.parent}{os.pathsep}{os.defpath}")
    found = engine.find()
    assert found.source == "wheel"
    assert found.command[1:] == ["-m", engine.WHEEL_MODULE]
    assert found.version.endswith(f"({engine.WHEEL_PACKAGE} {engine.wheel_version()})")


def test_the_wheel_comes_before_a_cached_build(empty_cache):
    fake_server(engine.build_dir(), help_text="")
    assert engine.find().source == "wheel"


@NOT_ON_WINDOWS
def test_without_the_wheel_the_cached_build_is_used_and_else_ensure_builds(empty_cache, no_wheel, builds):
    assert engine.find() is None  # nothing cached yet: `ensure()` would build
    said: list[str] = []
    built = engine.ensure(progress=said.append)
    assert builds == ["built"] and built.source == "built now" and built.version == "1 (built here)"
    assert "not installed" in said[0] and "building from source" in said[0]
    again = engine.find()
    assert (again.server, again.source) == (built.server, "cache")


@NOT_ON_WINDOWS
def test_no_avx2_is_one_sentence_then_the_build(empty_cache, monkeypatch, builds):
    monkeypatch.setattr(engine, "X86", True)
    monkeypatch.setattr(engine, "has_avx2", lambda: False)
    assert engine.find() is None
    said: list[str] = []
    engine.ensure(progress=said.append)
    assert builds == ["built"]
    assert len(said) == 1 and "no AVX2" in said[0] and said[0].endswith("building from source.")


@NOT_ON_WINDOWS
def test_route_build_passes_over_path_and_wheel_and_builds(empty_cache, monkeypatch, tmp_path, builds):
    program = fake_server(tmp_path / "bin", help_text=HELP_TODAY)
    monkeypatch.setenv("PATH", f"{program.parent}{os.pathsep}{os.defpath}")
    monkeypatch.setenv(engine.ROUTE_VARIABLE, "build")
    assert engine.find() is None
    assert engine.ensure(progress=lambda line: None).server == engine.build_dir() / "llama-server"
    assert builds == ["built"]


def test_route_wheel_without_the_wheel_is_a_sentence_and_never_a_build(
    empty_cache, monkeypatch, no_wheel, builds
):
    monkeypatch.setenv(engine.ROUTE_VARIABLE, "wheel")
    fake_server(engine.build_dir(), help_text="")  # a build exists, but the route says wheel
    assert engine.find() is None
    with pytest.raises(LocalServerError, match="not installed") as caught:
        engine.ensure(progress=lambda line: None)
    assert builds == [] and engine.ROUTE_VARIABLE in caught.value.sentence


@pytest.mark.parametrize("value", ["native", "wheel build", "1"])
def test_an_unknown_route_is_a_sentence_naming_the_choices(empty_cache, monkeypatch, value):
    monkeypatch.setenv(engine.ROUTE_VARIABLE, value)
    with pytest.raises(LocalServerError, match=engine.ROUTE_VARIABLE) as caught:
        engine.find()
    assert "wheel" in caught.value.sentence and "build" in caught.value.sentence


def test_this_cpu_is_read_for_avx2():
    if not engine.X86:
        pytest.skip("AVX2 is an x86 question")
    assert engine.has_avx2() in (True, False)


def test_the_wheel_server_says_its_llama_cpp_build(empty_cache):
    found = engine.find()
    done = subprocess.run([*found.command, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"version: {found.version}"
    assert re.fullmatch(r"b\d+ \(xllamacpp [\d.]+\)", found.version)


def test_the_cache_is_keyed_by_the_pinned_source_version(empty_cache):
    assert engine.build_dir().parent == empty_cache
    assert engine.SOURCE_VERSION in engine.build_dir().name


def sdist(path: Path, names: list[str]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name in names:
            data = f"# {name}\n".encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_unpacking_takes_vendor_llama_cpp_not_the_copy_under_git_modules(tmp_path):
    archive = sdist(
        tmp_path / "llama_cpp_python-0.3.36.tar.gz",
        [
            "llama_cpp_python-0.3.36/.git/modules/vendor/llama.cpp/CMakeLists.txt",  # first, as in 0.3.36
            "llama_cpp_python-0.3.36/.git/modules/vendor/llama.cpp/HEAD",
            "llama_cpp_python-0.3.36/vendor/llama.cpp/CMakeLists.txt",
            "llama_cpp_python-0.3.36/vendor/llama.cpp/tools/server/server.cpp",
            "llama_cpp_python-0.3.36/llama_cpp/__init__.py",
        ],
    )
    source = engine.unpack_llama_cpp(archive, tmp_path / "src")
    assert source == tmp_path / "src" / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp"
    assert (source / "CMakeLists.txt").is_file() and (source / "tools" / "server" / "server.cpp").is_file()
    root = tmp_path / "src"
    unpacked = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert all("/vendor/llama.cpp/" in name and ".git" not in name for name in unpacked)


def test_a_source_without_llama_cpp_is_a_sentence(tmp_path):
    archive = sdist(tmp_path / "other-1.0.tar.gz", ["other-1.0/setup.py"])
    with pytest.raises(LocalServerError, match=r"holds no vendor/llama\.cpp") as caught:
        engine.unpack_llama_cpp(archive, tmp_path / "src")
    assert engine.VARIABLE in caught.value.sentence


def test_building_without_cmake_or_a_compiler_says_what_to_install(empty_cache, monkeypatch):
    monkeypatch.setattr(engine, "_tool", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(LocalServerError, match="needs cmake") as caught:
        engine.build(progress=lambda line: None)
    assert engine.VARIABLE in caught.value.sentence
