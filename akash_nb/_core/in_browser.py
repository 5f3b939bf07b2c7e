"""Whether this Python runs in a browser tab (Pyodide, `IN_BROWSER`), where the tab's routes live, and the
one sentence for what a tab cannot do: start a process, a thread or a socket (`refuse()`, and `CellGuard`
for a lesson's own cells). The routes themselves are answered by `akash_nb._replay.in_tab`."""

from __future__ import annotations

import ast
import errno
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .exceptions import TAB, LocalServerError, _Blank

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

IN_BROWSER = sys.platform == "emscripten"

MODEL_ORIGIN = "http://in-browser.localhost"
REPLAY_ORIGIN = "http://replay.localhost"
MODEL_URL = f"{MODEL_ORIGIN}/v1"
REPLAY_URL = f"{REPLAY_ORIGIN}/v1"
# The banner's detail for the in-browser model; bridge.js's DEFAULT_ANSWER_TOKENS and N_CTX.
MODEL_SHOWN = "SmolLM2-135M, wllama in this tab; 128 tokens an answer unless max_tokens says more"
MODEL_CONTEXT_TOKENS = 2048
REPLAY_SHOWN = "answered in this tab"
SITE_ROOT_ENV = "AKASH_NB_SITE_ROOT"  # the site's root URL, when the kernel does not live under it
BRIDGE_PATH = "static/akash-nb/bridge.js"
KERNEL_FOLDER = "/extensions/"  # JupyterLite's kernel worker lives under {site}/extensions/...
LOCAL_ROUTE = "make lab"


def site_root(href: str | None = None) -> str:
    """The site's root URL, ending in "/". In this order:

    1. AKASH_NB_SITE_ROOT, when set;
    2. `href` (default: this worker's or page's `location.href`) cut at "/extensions/", where JupyterLite
       keeps its kernel worker;
    3. the folder of `href`.
    """
    explicit = os.environ.get(SITE_ROOT_ENV, "").strip()
    if explicit:
        return explicit.rstrip("/") + "/"
    if href is None:
        import js  # only Pyodide has it

        href = str(js.location.href)
    href = href.split("#")[0].split("?")[0]
    if KERNEL_FOLDER in href:
        return href[: href.index(KERNEL_FOLDER)] + "/"
    return href.rsplit("/", 1)[0] + "/"


def bridge_url(href: str | None = None) -> str:
    return site_root(href) + BRIDGE_PATH


# --- what a tab cannot do -------------------------------------------------------------------------------


def tab_sentence(kind: str, **fields: str) -> str:
    """The sentence of `exceptions.TAB[kind]`, filled in."""
    return TAB[kind].sentence.format_map(_Blank(fields))


class TabRefusal(LocalServerError):
    """What a browser tab cannot run (`refuse()`); a cell shows it as a note, not an error (wrap_handler)."""


def refuse(what: str) -> None:
    """Under Pyodide, a LocalServerError saying that `what` cannot run in a tab; elsewhere nothing."""
    if IN_BROWSER:
        raise TabRefusal(tab_sentence("local-only", detail=what))


# What Pyodide 314 raises in Chromium when a cell starts one of these (tests/test_pyodide.py runs them):
# subprocess.run: OSError(138, "emscripten does not support processes."); os.fork: OSError(ENOSYS);
# threading.Thread.start: RuntimeError("can't start new thread"); a listening socket (http.server's
# ThreadingHTTPServer): OSError(138, "Not supported") from socketserver (socket.bind alone succeeds).
_NO_PROCESS = "does not support processes"
_NO_THREAD = "can't start new thread"


def _started(error: BaseException) -> str | None:
    """What a failing cell tried to start ("a process", "a thread", "a network server"), or None."""
    if isinstance(error, OSError) and (_NO_PROCESS in str(error) or error.errno == errno.ENOSYS):
        return "a process"
    if isinstance(error, RuntimeError) and _NO_THREAD in str(error):
        return "a thread"
    if isinstance(error, OSError) and any("socket" in Path(frame).name for frame in _frames(error)):
        return "a network server"
    return None


def _frames(error: BaseException) -> list[str]:
    tb, files = error.__traceback__, []
    while tb is not None:
        files.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return files


def _names_assigned(source: str) -> set[str]:
    """The top-level names a cell's code binds (assignments, defs, classes, imports)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.With, ast.For)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    names.add(sub.id)
    return names


def _lesson(shell: InteractiveShell) -> str:
    """ "lesson 03" from the notebook's file name when the kernel knows it, else "this lesson"."""
    session = str(shell.user_ns.get("__session__") or "")
    found = re.search(r"(?:^|/)(\d\d)-[^/]*\.ipynb$", session)
    return f"lesson {found.group(1)}" if found else "this lesson"


class CellGuard:
    """Turns a cell's attempt to start a process, thread or socket (and the NameError that follows, for a
    name such a cell would have made) into one sentence instead of a traceback."""

    def __init__(self) -> None:
        self.source = ""  # the cell being run
        self.unmade: dict[str, str] = {}  # name a failed cell would have bound -> what it tried to start

    def pre_run_cell(self, info: Any) -> None:
        self.source = str(getattr(info, "raw_cell", "") or "")

    def sentence(self, error: BaseException, shell: InteractiveShell) -> str | None:
        lesson = _lesson(shell)
        if isinstance(error, NameError) and error.name in self.unmade:
            return tab_sentence("unmade", name=error.name, what=self.unmade[error.name], detail=lesson)
        started = _started(error)
        if started is None:
            return None
        for name in _names_assigned(self.source) - set(shell.user_ns):
            self.unmade[name] = started
        return tab_sentence("starts", what=started, detail=lesson)


_guard = CellGuard()
# The exceptions a cell that starts a process, thread or socket ends in, under Pyodide.
CELL_FAILURES: tuple[type[BaseException], ...] = (OSError, RuntimeError, NameError)

Handler = Callable[..., Any]


def wrap_handler(inner: Handler, note: Callable[[str], None]) -> Handler:
    """IPython's custom exception handler `inner` (error_display.install_error_display's), with a tab's
    cell failures first: a lesson cell's process, thread or socket, a later cell's name such a cell would have
    made, and the package's own refusals (`refuse()`). Each shows its sentence as a note, not as an error:
    the cell ends without one, so JupyterLite's Run All goes on with the cells a tab can run instead of
    stopping at the first it cannot (`note` shows it: render's error box). The rest go to `inner`, or get
    IPython's own traceback."""

    def handler(
        shell: InteractiveShell,
        etype: type[BaseException],
        value: BaseException,
        tb: TracebackType | None,
        tb_offset: int | None = None,
    ) -> Any:
        sentence = _guard.sentence(value, shell)
        if sentence is None and isinstance(value, TabRefusal):
            sentence = str(value)
        if sentence is not None:
            note(sentence)
            return None
        return inner(shell, etype, value, tb, tb_offset)

    return handler


def guard_cells(shell: InteractiveShell) -> None:
    """Let the cell guard see each cell's source before it runs (error_display.install_error_display shows its
    sentences)."""
    if _guard.pre_run_cell not in shell.events.callbacks["pre_run_cell"]:
        shell.events.register("pre_run_cell", _guard.pre_run_cell)
