"""The project installs the same way from pip (pyproject.toml) and conda (environment.yml), and the
installed `akash-nb` command offers what the README promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from project import PROJECT, ROOT

BIN = Path(sys.executable).parent
OWN = canonicalize_name(PROJECT["name"])


def by_name(lines: list[str]) -> dict[str, Requirement]:
    requirements = [Requirement(line) for line in lines]
    return {canonicalize_name(r.name): r for r in requirements}


def pyproject_requirements() -> dict[str, Requirement]:
    """Every requirement, the core set's and each extra's, except an extra's reference to another of the
    package's own extras (such as `akash-nb[local]`), whose requirements are listed on their own."""
    lines = list(PROJECT["dependencies"])
    for extra in PROJECT["optional-dependencies"].values():
        lines.extend(extra)
    return {name: r for name, r in by_name(lines).items() if name != OWN}


def conda_environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def conda_pip_section() -> list[str]:
    sections = [d["pip"] for d in conda_environment()["dependencies"] if isinstance(d, dict)]
    assert len(sections) == 1
    return sections[0]


def test_environment_yml_pins_python_311_with_pip():
    plain = [d for d in conda_environment()["dependencies"] if isinstance(d, str)]
    assert "python=3.11" in plain and "pip" in plain


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    listed = [line for line in conda_pip_section() if not line.startswith("-")]
    conda, pip = by_name(listed), pyproject_requirements()
    assert sorted(conda) == sorted(pip)
    for name, requirement in pip.items():  # same versions and extras too
        assert conda[name].specifier == requirement.specifier, name
        assert conda[name].extras == requirement.extras, name
        assert conda[name].marker == requirement.marker, name


def test_an_extra_that_names_the_package_itself_names_its_own_extras():
    extras = set(PROJECT["optional-dependencies"])
    for extra, lines in PROJECT["optional-dependencies"].items():
        for requirement in map(Requirement, lines):
            if canonicalize_name(requirement.name) == OWN:
                assert requirement.extras and requirement.extras <= extras, extra
                assert not requirement.specifier, "the package itself, at whatever version this is"


def test_every_requirement_has_the_one_lower_bound_the_lowest_versions_check_installs():
    """scripts/lowest.py pins each requirement to its floor for `make lowest`; none is left unbounded."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import lowest
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    pins = [Requirement(line) for line in lowest.constraints()]
    assert {canonicalize_name(p.name) for p in pins} == set(pyproject_requirements())
    for pin in pins:
        (only,) = pin.specifier
        assert only.operator == "==", pin


def test_environment_yml_installs_the_package_itself():
    assert "--editable ." in conda_pip_section()


def test_the_akash_nb_command_is_installed_and_lists_its_subcommands():
    command = BIN / ("akash-nb.exe" if sys.platform == "win32" else "akash-nb")  # pip's launcher there
    assert command.is_file()
    result = subprocess.run([str(command), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for subcommand in ("serve", "stop", "doctor", "run", "lab"):
        assert subcommand in result.stdout


def test_the_console_script_points_at_the_cli():
    assert PROJECT["scripts"] == {"akash-nb": "akash_nb.cli:main"}


# What a wheel of the prebuilt engine is named for on each platform the local extra installs it on.
ENGINE_WHEEL_PLATFORMS = {
    ("linux", "x86_64"): "manylinux2014_x86_64",
    ("linux", "aarch64"): "manylinux2014_aarch64",
    ("darwin", "arm64"): "macosx_13_0_arm64",
    ("darwin", "x86_64"): "macosx_13_0_x86_64",
    ("win32", "AMD64"): "win_amd64",
}


def engine_lock() -> tuple[Requirement, list[str]]:
    """scripts/engine.lock's one requirement and its hashes."""
    text = (ROOT / "scripts" / "engine.lock").read_text()
    body = " ".join(line.rstrip("\\").strip() for line in text.splitlines() if not line.startswith("#"))
    requirement, *options = body.split()
    hashes = [option.removeprefix("--hash=sha256:") for option in options]
    assert all(option.startswith("--hash=sha256:") for option in options), options
    return Requirement(requirement), hashes


def test_the_engine_lock_pins_the_local_extras_engine_by_hash():
    locked, hashes = engine_lock()
    (declared,) = [by_name(PROJECT["optional-dependencies"]["local"])[canonicalize_name(locked.name)]]
    (pin,) = declared.specifier
    assert pin.operator == "==" and str(locked.specifier) == str(declared.specifier)
    assert len(hashes) >= len(ENGINE_WHEEL_PLATFORMS) and all(len(h) == 64 for h in hashes)
    assert len(set(hashes)) == len(hashes)


def test_the_engine_is_installed_exactly_where_a_wheel_exists():
    locked, _ = engine_lock()
    (declared,) = [by_name(PROJECT["optional-dependencies"]["local"])[canonicalize_name(locked.name)]]
    for (platform, machine), _tag in ENGINE_WHEEL_PLATFORMS.items():
        where = {"sys_platform": platform, "platform_machine": machine}
        assert declared.marker.evaluate(where), where
    for platform, machine in (
        ("linux", "ppc64le"),
        ("linux", "armv7l"),
        ("win32", "ARM64"),
        ("freebsd", "amd64"),
    ):
        where = {"sys_platform": platform, "platform_machine": machine}
        assert not declared.marker.evaluate(where), f"no wheel for {where}: pip would compile its sdist"


def test_venv_sh_installs_the_engine_lock_with_required_hashes():
    script = (ROOT / "scripts" / "venv.sh").read_text()
    assert "--require-hashes" in script and "-r scripts/engine.lock" in script
    assert script.index("scripts/engine.lock") < script.index('-e ".[$extras]"')
