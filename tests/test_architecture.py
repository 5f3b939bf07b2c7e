"""The package's shape: one-way layers (no import cycle), and every name a learner is told to use resolves.

The import graph is read from the source (ast), so a cycle hidden inside a function counts as much as one
at the top of a module; only imports under `if TYPE_CHECKING:` (annotations, never run) are left out.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import re
import sys

import pytest
from processes import run
from project import ROOT

import akash_nb

PACKAGE = ROOT / "akash_nb"
# Every module by its dotted name below akash_nb ("_core.config"); the packages' __init__ files apart.
MODULES = {
    ".".join(path.relative_to(PACKAGE).with_suffix("").parts): path
    for path in sorted(PACKAGE.rglob("*.py"))
    if path.stem != "__init__"
}
SUBPACKAGES = sorted(path.parent for path in PACKAGE.rglob("__init__.py") if path.parent != PACKAGE)
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


def _package_targets(node: ast.Import | ast.ImportFrom, module: str) -> set[str]:
    """The akash_nb modules (dotted, below akash_nb) an import statement in `module` loads."""
    found = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.startswith("akash_nb."):
                found.add(_nearest_module(alias.name.removeprefix("akash_nb.")))
        return found - {""}
    if node.level:
        package = f"akash_nb.{module}".rsplit(".", 1)[0]
        base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
    elif (node.module or "").split(".")[0] == "akash_nb":
        base = node.module or ""
    else:
        return found
    below = base.removeprefix("akash_nb").removeprefix(".")
    if below in MODULES:
        found.add(below)
    else:  # from a package: each name a module of it, or a name its __init__ defines
        for alias in node.names:
            dotted = f"{below}.{alias.name}" if below else alias.name
            found.add(dotted if dotted in MODULES else "")
    return found - {""}


def _nearest_module(dotted: str) -> str:
    while dotted and dotted not in MODULES:
        dotted = dotted.rpartition(".")[0]
    return dotted


@functools.cache  # three tests read it; the modules do not change during a run
def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = {t for node, _ in _imports(tree) for t in _package_targets(node, name)} - {name}
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
    assert set(graph) >= {"_core.connection", "_clients", "_render", "_core.failures", "_widgets"}
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

    assert not below("_core.connection") & {
        "_render",
        "_widgets",
        "_clients",
        "_conversation",
        "_guide",
        "_wire",
    }
    assert "_core.connection" in graph["_render"] and "_clients" not in below("_render")
    assert "_core.connection" in graph["_widgets"]
    assert not below("_core.exceptions") - {
        "_core.masking"
    }  # the bottom: raised by everything, loads nothing
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
            if _package_targets(node, name) or "#" not in lines[node.lineno - 1]:
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
        "import akash_nb, importlib, sys\nmissing = []\n"
        f"for dotted in {names!r}:\n"
        "    value = akash_nb\n"
        "    parts = dotted.split('.')\n"
        "    if parts[1].startswith('_'):  # a private module, named in a comment: import it, then look\n"
        "        for end in range(len(parts), 1, -1):\n"
        "            try:\n"
        "                value = importlib.import_module('.'.join(parts[:end]))\n"
        "                parts = parts[end - 1 :]\n"
        "                break\n"
        "            except ImportError:\n"
        "                continue\n"
        "    for part in parts[1:]:\n"
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


@pytest.mark.parametrize("name", ["exercises", "doctor", "generated_code", "cli"])
def test_a_public_module_resolves_as_an_attribute_of_a_fresh_import(name):
    done = run(
        [sys.executable, "-c", f"import akash_nb; print(akash_nb.{name}.__name__)"], cwd=ROOT, timeout=60
    )
    assert done.stdout.strip() == f"akash_nb.{name}", done.stderr


def test_the_api_is_all_and_the_public_modules_and_every_other_module_is_private():
    public = {name for name in MODULES if "." not in name and not name.startswith("_")}
    assert public == set(akash_nb._PUBLIC_MODULES), "a module lessons do not name must start with _"
    assert all(part.name.startswith("_") for part in SUBPACKAGES)
    assert set(akash_nb.__all__) == set(akash_nb._EXPORTS)
    with pytest.raises(AttributeError):
        akash_nb.errors  # noqa: B018 (the old module names are gone)
    # A private module is not served as an attribute of a bare import (Python adds one once it is imported).
    done = run([sys.executable, "-c", "import akash_nb; akash_nb._render"], cwd=ROOT, timeout=60)
    assert "has no attribute '_render'" in done.stderr


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
    assert {"exercises", "doctor", "client"} <= set(dir(akash_nb))
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
        paths = re.findall(r"`([a-z_/]+)\.py`", body)
        layers.append((title.strip(), [p.replace("/", ".") for p in paths if not p.endswith("__init__")]))
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


def test_docs_architecture_has_one_heading_for_every_module():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    headings = re.findall(r"^### `([a-z_/]+)\.py`$", text, flags=re.M)
    assert sorted(h.replace("/", ".") for h in headings) == sorted(MODULES)
