"""The project installs the same way from pip (pyproject.toml) and conda (environment.yml), and the
installed `akash-nb` command offers what the README promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def by_name(lines: list[str]) -> dict[str, Requirement]:
    requirements = [Requirement(line) for line in lines]
    return {r.name.lower().replace("_", "-"): r for r in requirements}


def pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines.extend(extra)
    return by_name(lines)


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


def test_environment_yml_installs_the_package_itself():
    assert "--editable ." in conda_pip_section()


def test_the_akash_nb_command_is_installed_and_lists_its_subcommands():
    command = BIN / "akash-nb"
    assert command.is_file()
    result = subprocess.run([str(command), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for subcommand in ("serve", "stop", "doctor", "run", "lab"):
        assert subcommand in result.stdout


def test_the_console_script_points_at_the_cli():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"akash-nb": "akash_nb.cli:main"}
