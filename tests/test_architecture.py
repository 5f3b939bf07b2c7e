"""The package's shape: one-way layers (no import cycle), and every name a learner is told to use resolves.

The import graph is read from the source (ast), so a cycle hidden inside a function counts as much as one
at the top of a module; only imports under `if TYPE_CHECKING:` (annotations, never run) are left out.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import sys

import pytest
from processes import run
from project import ROOT

import akash_nb

PACKAGE = ROOT / "akash_nb"
MODULES = {path.stem: path for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
# Imports inside a function are for one reason only: the command line loads a subcommand's module when
# that subcommand runs (so `akash-nb stop` never loads the SDK or Jupyter), and the teacher's optional
# extras are imported where the teacher's code needs them. Any other module imports at its top.
LAZY_MODULES = {"cli"}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, *, inside_function: bool = False):
    """(node, inside a function?) for every import outside `if TYPE_CHECKING:` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):  # its body: annotations only, never run
            for child in node.orelse:
                yield from _imports(child, inside_function=inside_function)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, inside_function
        yield from _imports(
            node, inside_function=inside_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        )


def _package_targets(node: ast.Import | ast.ImportFrom) -> set[str]:
    """The akash_nb modules an import statement loads."""
    found = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            parts = alias.name.split(".")
            if parts[0] == "akash_nb" and len(parts) > 1:
                found.add(parts[1])
        return found
    if node.level == 1 or (node.level == 0 and (node.module or "").startswith("akash_nb")):
        module = node.module or ""
        if node.level == 0:
            module = module.removeprefix("akash_nb").removeprefix(".")
        if module:
            found.add(module.split(".")[0])
        else:  # from . import a, b: each a module
            found.update(alias.name for alias in node.names if alias.name in MODULES)
    return found


@functools.cache  # three tests read it; the modules do not change during a run
def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = {t for node, _ in _imports(tree) for t in _package_targets(node)} - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan), as sorted lists."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert set(graph) >= {"connection", "connect", "render", "errors", "exceptions", "widgets"}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_connection_layer_displays_nothing_and_render_does_not_import_upward():
    graph = import_graph()

    def below(module: str) -> set[str]:
        seen, todo = set(), [module]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    assert not below("connection") & {"render", "widgets", "connect", "conversation", "guide", "wire"}
    assert "connection" in graph["render"] and "connect" not in below("render")
    assert "connection" in graph["widgets"]
    assert not below("exceptions") - {"masking"}  # the bottom: raised by everything, loads nothing heavy
    source = (PACKAGE / "_core/connection.py").read_text(encoding="utf-8")
    assert "IPython" not in source and "display(" not in source


def test_imports_inside_functions_are_only_the_command_lines_and_optional_extras_and_say_why():
    offenders = []
    for name, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node, inside in _imports(ast.parse(text)):
            if not inside or name in LAZY_MODULES:
                continue
            if _package_targets(node) or "#" not in lines[node.lineno - 1]:
                offenders.append(f"{name}.py:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert offenders == []


# --- every name a learner is told to use --------------------------------------------------------------

DOCUMENTED = re.compile(r"\bakash_nb\.([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?")


def documented_names() -> set[str]:
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = set()
    for path in texts:
        found.update(m.group(0) for m in DOCUMENTED.finditer(path.read_text(encoding="utf-8")))
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            found.update(m.group(0) for m in DOCUMENTED.finditer("".join(cell["source"])))
    for path in MODULES.values():  # the package's own docstrings and messages
        found.update(m.group(0) for m in DOCUMENTED.finditer(path.read_text(encoding="utf-8")))
    # A file name (akash_nb.egg-info) is not an attribute, nor a family (akash_nb.exercises.check_...)
    return {name for name in found if not name.startswith("akash_nb.egg") and not name.endswith("_")}


def test_every_name_the_docs_lessons_and_messages_use_resolves_after_a_bare_import():
    names = sorted(documented_names())
    assert "akash_nb._streaming.collect_stream" in names and "akash_nb.connection_values" in names
    probe = (
        "import akash_nb, sys\nmissing = []\n"
        f"for dotted in {names!r}:\n"
        "    value = akash_nb\n"
        "    for part in dotted.split('.')[1:]:\n"
        "        try:\n"
        "            value = getattr(value, part)\n"
        "        except AttributeError:\n"
        "            missing.append(dotted)\n"
        "            break\n"
        "print('\\n'.join(missing))\n"
    )
    done = run([sys.executable, "-c", probe], cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


@pytest.mark.parametrize("name", ["streaming", "errors", "connection", "widgets", "exercises", "doctor"])
def test_a_submodule_resolves_as_an_attribute_of_a_fresh_import(name):
    done = run(
        [sys.executable, "-c", f"import akash_nb; print(akash_nb.{name}.__name__)"], cwd=ROOT, timeout=60
    )
    assert done.stdout.strip() == f"akash_nb.{name}", done.stderr


def test_the_function_client_stays_the_function_whatever_was_imported_first():
    code = (
        "import akash_nb._widgets, akash_nb._clients, akash_nb._core.connection, akash_nb\n"
        "print(callable(akash_nb.client), akash_nb.client.__module__, akash_nb._core.connection.__name__)"
    )
    done = run([sys.executable, "-c", code], cwd=ROOT, timeout=60)
    assert done.stdout.split() == ["True", "akash_nb._clients", "akash_nb._core.connection"], done.stderr


def test_every_export_resolves_and_the_exceptions_are_exported():
    for name in akash_nb.__all__:
        assert getattr(akash_nb, name) is not None
    for name in (
        "AkashNBError",
        "ConfigError",
        "RequestError",
        "ParameterError",
        "FileError",
        "LocalServerError",
        "NoRecordingError",
        "ConversationError",
    ):
        assert issubclass(getattr(akash_nb, name), akash_nb.AkashNBError)
    assert {"streaming", "errors", "client"} <= set(dir(akash_nb))
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        akash_nb.nonexistent  # noqa: B018


# --- the README's layers are the tree's ------------------------------------------------------------------


def readme_layers() -> list[tuple[str, list[str]]]:
    """(layer, modules) in the order README.md's "How it is built" lists them."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## How it is built", 1)[1].split("\n## ", 1)[0]
    layers: list[tuple[str, list[str]]] = []
    for item in re.split(r"\n  - ", section.split("\n- One command line", 1)[0])[1:]:
        title, _, body = item.partition(":")
        modules = re.findall(r"`([a-z_]+)\.py`", body)
        layers.append((title.strip(), [m for m in modules if m != "__init__"]))
    return layers


def test_the_readme_names_every_module_once_in_a_layer():
    layers = readme_layers()
    named = [module for _, modules in layers for module in modules]
    assert len(layers) >= 4
    assert sorted(named) == sorted(MODULES), "README.md's 'How it is built' must list akash_nb/ as it is"


def test_no_module_imports_from_a_layer_the_readme_lists_after_its_own():
    layers = readme_layers()
    rank = {module: number for number, (_, modules) in enumerate(layers) for module in modules}
    upward = [
        f"{module} ({layers[rank[module]][0]}) imports {target} ({layers[rank[target]][0]})"
        for module, targets in import_graph().items()
        for target in targets
        if rank[target] > rank[module]
    ]
    assert upward == []
