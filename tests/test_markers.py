"""The markers mean what they say: a test not marked `live` cannot start the embedded model (the guard in
tests/conftest.py), so `pytest -m "not live and not browser and not network"` is an offline subset that
needs no llama.cpp and no package index."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest
from conftest import GUARD_FOLDER, NOT_LIVE
from processes import environment_without, run
from project import ROOT

from akash_nb._core.exceptions import LocalServerError
from akash_nb._engine import builds, class_server, embedded, llama_server, weights


def test_a_test_not_marked_live_cannot_start_the_embedded_model(state_dir):
    with pytest.raises(LocalServerError) as caught:
        embedded.ensure_server()
    assert "exited (code 97)" in caught.value.sentence and NOT_LIVE in caught.value.sentence
    assert not list(state_dir.glob("server-*.json")), "nothing is left recorded as running"


def test_nor_the_class_server(state_dir):
    with pytest.raises(LocalServerError, match=NOT_LIVE):
        class_server.start_share(port=llama_server.free_port(), timeout=30)


def test_nor_a_child_process_even_one_that_drops_akash_variables(state_dir):
    script = "from akash_nb._engine import embedded; embedded.ensure_server()"
    done = run([sys.executable, "-c", script], timeout=60, cwd=ROOT)
    assert done.returncode != 0 and NOT_LIVE in done.stderr
    found = run(
        [sys.executable, "-c", "from akash_nb._engine import builds; print(builds.find().server)"],
        timeout=60,
        cwd=ROOT,
        env=environment_without(),
    )
    assert found.stdout.strip() == os.environ[builds.VARIABLE], "the stand-in is first on PATH too"


def test_nor_the_prebuilt_engine_when_a_test_unsets_the_stand_in(state_dir, monkeypatch):
    monkeypatch.delenv(builds.VARIABLE)
    monkeypatch.setenv("PATH", os.defpath)
    assert builds.find().source == "wheel"
    with pytest.raises(LocalServerError) as caught:
        embedded.ensure_server()
    assert "exited (code 97)" in caught.value.sentence and NOT_LIVE in caught.value.sentence
    assert not list(state_dir.glob("server-*.json"))


@pytest.mark.live
def test_a_live_test_gets_the_real_lookup():
    assert not any(GUARD_FOLDER in part for part in os.environ["PATH"].split(os.pathsep))
    assert GUARD_FOLDER not in os.environ.get(builds.VARIABLE, "")
    assert GUARD_FOLDER not in os.environ.get("PYTHONPATH", "")
    assert weights.VARIABLE not in os.environ


GUARDED_SESSION = """
import pytest
from akash_nb._engine import embedded

def test_unmarked_starts_it():
    embedded.ensure_server()

def test_unmarked_uses_the_shared_server(shared_local_server):
    pass

@pytest.mark.live
def test_marked(shared_local_server):
    pass
"""


def test_an_unmarked_test_that_starts_the_model_fails_loudly(pytester, monkeypatch, tmp_path):
    """A whole session of its own, with this conftest: the unmarked tests fail, naming the marker, and the
    shared server is never started for the one that only asked for it."""
    # akash_nb, and tests/ for the helpers the conftest imports (faultserver), as in the suite's own session
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    monkeypatch.setenv("AKASH_NB_STATE_DIR", str(tmp_path / "state"))
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(test_guarded=GUARDED_SESSION)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-m", "not live", "-W", "ignore::pytest.PytestUnknownMarkWarning"
    )
    result.assert_outcomes(failed=1, errors=1, deselected=1)  # a failure in setup is counted as an error
    output = result.stdout.str()
    assert output.count(NOT_LIVE) >= 2
    assert "test_unmarked_uses_the_shared_server uses the session's embedded server" in output
    assert not list((tmp_path / "state").glob("server-*.json"))


# --- the suite's own hygiene --------------------------------------------------------------------------------


def test_an_unregistered_marker_is_an_error_not_a_new_marker(pytester):
    """--strict-markers (pyproject's addopts): a misspelt `network` is refused at collection, so it cannot
    quietly escape `-m "not network"`."""
    pytester.makepyfile(test_typo="import pytest\n\n@pytest.mark.netwrok\ndef test_x():\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-c", str(ROOT / "pyproject.toml"))
    assert result.ret != 0 and "'netwrok' not found in `markers`" in result.stdout.str()


def decorators(path: Path, name: str) -> list[str]:
    """The decorators of test function `name` in `path`, as written."""
    tree = ast.parse(path.read_text(), str(path))
    test = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name)
    return [ast.unparse(d) for d in test.decorator_list]


def test_the_test_that_asks_the_package_index_is_marked_network():
    """The offline subset (`-m "not live and not browser and not network"`) resolves nothing from PyPI: the
    one test that runs pip against the index (the student set, resolved for real) is marked."""
    student_set = "test_the_student_set_is_wheels_only_with_no_test_or_build_tool"
    assert "pytest.mark.network" in decorators(ROOT / "tests" / "test_workshop.py", student_set)


def test_no_test_file_imports_another_test_file():
    """What test files share lives in tests/helpers.py (and project.py, processes.py): importing a test file
    runs its module-level code and can collect its tests twice."""
    importing = {}
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        if found := sorted(n for n in names if n.split(".")[0].startswith("test_")):
            importing[path.name] = found
    assert importing == {}, f"move what these import into tests/helpers.py: {importing}"
