"""Every user-facing sentence lives in a table: no package error is built from a literal sentence.

The tables are errors.STATUS / errors.NO_STATUS (failures of a request) and the tables in
akash_nb/_core/exceptions.py (bad input, a refused request, the embedded engine, ...), which docs/errors.md is
generated from. A package error (AkashNBError or any subclass) made with a string literal or an f-string as
its sentence is a case docs/errors.md does not list; this scan of every akash_nb/*.py finds each one."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import akash_nb
from akash_nb._core import exceptions

PACKAGE = Path(akash_nb.__file__).resolve().parent

LOG_TAIL = "the sentence ends with the log's last lines, each on a line of its own (a table row is one line)"

# "module:function" -> why its one literal sentence may stay where it is (a second one there fails too).
ALLOWED: dict[str, str] = {
    "_engine.builds:_run": LOG_TAIL,
    "_core.failures:explain": (
        "an exception no table knows: its own type and (masked) text, after the provider"
    ),
    "_engine.llama_server:wait_until_ready": LOG_TAIL,
}


def _is_literal(node: ast.expr) -> bool:
    """A string literal, an f-string, `"..." + x`, or `"...".format(...)`: a sentence written in place."""
    if isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        return True
    if isinstance(node, ast.BinOp):
        return _is_literal(node.left) or _is_literal(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return _is_literal(node.func.value)
    return False


def _called(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return node.func.id if isinstance(node.func, ast.Name) else None


def error_classes(trees: dict[str, ast.Module]) -> set[str]:
    """The names of the package's error classes: AkashNBError, every subclass in _core/exceptions.py, and
    every class in akash_nb whose bases include one of them (found from the source, to a fixpoint)."""
    names = {
        name
        for name, value in vars(exceptions).items()
        if inspect.isclass(value) and issubclass(value, exceptions.AkashNBError)
    }
    grown = True
    while grown:
        grown = False
        for tree in trees.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in names:
                    bases = {
                        b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases
                    }
                    if bases & names:
                        names.add(node.name)
                        grown = True
    return names


def literal_sentences(trees: dict[str, ast.Module]) -> list[tuple[str, int, str]]:
    """(module:function, line, class) for each package error built from a literal sentence."""
    classes = error_classes(trees)
    found = []
    for module, tree in trees.items():
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and node.args
                and _is_literal(node.args[0])
                and _called(node) in classes
            ):
                inside = [f for f in functions if f.lineno <= node.lineno <= (f.end_lineno or f.lineno)]
                function = max(inside, key=lambda f: f.lineno).name if inside else "<module>"
                found.append((f"{module}:{function}", node.lineno, str(_called(node))))
    return sorted(found)


def _package_trees() -> dict[str, ast.Module]:
    return {
        ".".join(path.relative_to(PACKAGE).with_suffix("").parts): ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def test_no_package_error_carries_a_literal_sentence() -> None:
    found = literal_sentences(_package_trees())
    allowed = [site for site in found if site[0] in ALLOWED]
    sites = [site for site in found if site[0] not in ALLOWED or [s[0] for s in allowed].count(site[0]) > 1]
    assert not sites, (
        f"{len(sites)} package errors carry a sentence written in place, not a table row (move each to a "
        "table in akash_nb/_core/exceptions.py and raise it through its helper, or allow it in ALLOWED "
        "with why):\n"
        + "\n".join(
            f"  akash_nb/{where.split(':')[0].replace('.', '/')}.py:{line} {cls} in {where}"
            for where, line, cls in sites
        )
    )


def test_every_allowed_site_still_exists() -> None:
    """An allow-list entry whose literal sentence has gone is removed, so the list stays the truth."""
    present = {where for where, _, _ in literal_sentences(_package_trees())}
    assert not set(ALLOWED) - present, f"no longer needed in ALLOWED: {sorted(set(ALLOWED) - present)}"


def test_the_scan_finds_literal_sentences_of_any_package_error() -> None:
    source = """
class Mine(LocalServerError):
    pass

def a(x):
    raise ConfigError(f"bad {x}; fix it.")

def b():
    raise errors.Mine("bad; " + "fix it.")

def c(x):
    return RequestError("bad {}.".format(x))

def d(kind):
    raise input_error(kind)  # a table row: fine
"""
    found = literal_sentences({"sample": ast.parse(source)})
    assert [(where, cls) for where, _, cls in found] == [
        ("sample:a", "ConfigError"),
        ("sample:b", "Mine"),
        ("sample:c", "RequestError"),
    ]
