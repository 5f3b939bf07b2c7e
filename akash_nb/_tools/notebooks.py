"""Executing the lessons headless and keeping the committed copies clean: `run_all()` (`make run`),
`refresh()` (`make notebooks`), `record()` (`make record`) and `normalize()`."""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert.preprocessors import CoalesceStreamsPreprocessor

from .._core.exceptions import AkashNBError, file_error
from .._core.files import ensure_folder, read_text
from .._replay import cassettes, loopback

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
CELL_TIMEOUT = 600  # seconds; a slow CPU writing a long answer on the embedded model
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SOLUTION_MARK = "Run All does not run it"  # in the summary line of every solution (akash_nb._tools.template)
SOLUTION_TAG = "solution"
GUIDE_TAG = (
    "guide"  # the guide's own cells: plain openai code, what the guide page shows (akash_nb._tools.docs)
)
_PYTHON_BLOCK = re.compile(r"```python\n(.*?)\n```", re.DOTALL)
MISSING_RECORDING = "No recording for"
# What differs from run to run in an output, masked as tests/sanitize.cfg masks it for nbval.
SANITIZE = (
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),  # a loopback server's free port
    (re.compile(r"/tmp/ipykernel_\d+/\d+\.py"), "<cell>"),  # a kernel's temporary file for a cell
)


def sanitize(value: Any) -> Any:
    """`value` (a str, or the list of lines nbformat may hold) with SANITIZE applied."""
    if isinstance(value, list):
        return [sanitize(v) for v in value]
    if isinstance(value, str):
        for pattern, replacement in SANITIZE:
            value = pattern.sub(replacement, value)
    return value


LESSON_FIX = "restore it with git checkout -- <path>, or fix its JSON"


def read_lesson(path: Path) -> nbformat.NotebookNode:
    """The notebook at `path`; a FileError naming it and the fix when it is missing, a folder, unreadable,
    or not a notebook (truncated, not JSON, the wrong shape). The file is left as it is."""
    try:
        nb: nbformat.NotebookNode = nbformat.reads(read_text(path), as_version=4)  # no FIFO waited on
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no list of cells")
        for number, cell in enumerate(nb.cells, start=1):
            if (
                not isinstance(cell, dict)
                or cell.get("cell_type") not in ("code", "markdown", "raw")
                or not isinstance(cell.get("source"), str)
            ):
                raise ValueError(f"its cell {number} is not a notebook cell")
        return nb
    except (OSError, UnicodeDecodeError) as error:
        raise file_error(path, "The lesson", error, LESSON_FIX.replace("<path>", str(path))) from error
    except Exception as error:  # nbformat's own: NotJSONError, ValidationError, KeyError, ...
        why = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise file_error(
            path, "The lesson", f"not a notebook: {why}", LESSON_FIX.replace("<path>", str(path))
        ) from error


def lessons(folder: Path) -> list[Path]:
    """The numbered lessons in reading order."""
    return sorted(p for p in folder.glob("[0-9]*.ipynb"))


def normalize(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Strip what differs from machine to machine and run to run (see docs/architecture.md)."""
    coalesce = CoalesceStreamsPreprocessor()
    nb.metadata = nbformat.from_dict({"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}})
    count = 0
    for index in range(len(nb.cells)):
        cell = nb.cells[index]
        cell.metadata.pop("execution", None)
        cell.metadata.pop("collapsed", None)
        cell.metadata.pop("scrolled", None)
        cell.id = cell.get("id") or f"cell-{index}"
        if cell.cell_type != "code":
            continue
        # A streamed answer printed piece by piece is one output, as JupyterLab shows it (nbconvert's own
        # coalescing, which also folds carriage returns).
        cell, _ = coalesce.preprocess_cell(cell, {}, index)
        if cell.execution_count is not None or cell.outputs:
            count += 1
            cell.execution_count = count
        for output in cell.outputs:
            if "execution_count" in output:
                output.execution_count = count
            if "text" in output:
                output.text = sanitize(output.text)
            data = output.get("data", {})
            data.pop(WIDGET_VIEW, None)
            for mime in data:
                data[mime] = sanitize(data[mime])
    return nb


def solution_code(cell: nbformat.NotebookNode) -> str | None:
    """The code of a markdown solution cell (a `<details>` whose summary says SOLUTION_MARK, around a python
    block)."""
    if cell.cell_type != "markdown" or SOLUTION_MARK not in cell.source:
        return None
    found = _PYTHON_BLOCK.search(cell.source)
    return found.group(1) if found else None


def with_solutions(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `nb` with each markdown solution followed by the same code as a code cell (tagged)."""
    copy: nbformat.NotebookNode = nbformat.from_dict(nbformat.from_dict(nb))
    cells = []
    for cell in copy.cells:
        cells.append(cell)
        code = solution_code(cell)
        if code is not None:
            cells.append(nbformat.v4.new_code_cell(code, metadata={"tags": [SOLUTION_TAG]}))
    copy.cells = cells
    return copy


def execute(
    path: Path, env: dict[str, str] | None = None, *, solutions: bool = False
) -> tuple[nbformat.NotebookNode, str | None]:
    """Execute one notebook in a fresh kernel (cwd = its folder). Returns it and the error, if any.

    The kernel talks over IPC sockets in a private folder, not TCP: nothing else can connect, and ipykernel
    has no reason to warn that "Kernel is running over TCP without encryption"."""
    try:
        nb = read_lesson(path)
    except AkashNBError as error:
        return nbformat.v4.new_notebook(), error.sentence
    if solutions:
        nb = with_solutions(nb)
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        with tempfile.TemporaryDirectory(prefix="akash-nb-kernel-") as sockets:
            kernel = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel"))
            client = NotebookClient(
                nb,
                km=kernel,
                timeout=CELL_TIMEOUT,
                kernel_name="python3",
                resources={"metadata": {"path": str(path.parent)}},
                store_widget_state=False,
            )
            try:
                client.execute()
            finally:  # a kernel manager passed in is ours to stop (nbclient stops only its own)
                if kernel.has_kernel:
                    kernel.shutdown_kernel(now=True)
        return nb, None
    except CellExecutionError as error:
        first = next((line for line in str(error).splitlines() if line.strip()), "")
        raised = f"{error.ename}: {error.evalue}" if getattr(error, "ename", None) else first
        failed = _first_failed(nb)
        return nb, raised if failed is None else f"{cell_name(nb, failed)} raised {raised}"
    finally:
        os.environ.clear()
        os.environ.update(old)


def cell_name(nb: nbformat.NotebookNode, index: int) -> str:
    """How every akash_nb message and the nbval report name a cell: its place counting every cell from the
    top, markdown included, as a teacher counts them down JupyterLab's page (the [n] beside a cell is an
    execution count, which changes each run), and its first line, which the search box finds."""
    cell = nb.cells[index]
    first_line = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
    return f"cell {index + 1} (counting markdown; first line: {first_line[:60]!r})"


def _first_failed(nb: nbformat.NotebookNode) -> int | None:
    """The index of the first cell whose outputs hold an error (where Run All stopped), or None."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and any(o.output_type == "error" for o in cell.get("outputs", [])):
            return index
    return None


def _texts(output: nbformat.NotebookNode) -> str:
    if "text" in output:
        text = output.text
    else:
        text = output.get("data", {}).get("text/plain", "")
    return "".join(text) if isinstance(text, list) else text


def problem(nb: nbformat.NotebookNode, name: str) -> str | None:
    """The first output that must not be committed, as one sentence naming its cell: an error, or an
    output that says a recording is missing (or starts with "Error:"); None when there is none."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        where = f"{name}, {cell_name(nb, index)}"
        for output in cell.outputs:
            if output.output_type == "error":
                return f"{where} raised {output.ename}: {output.evalue}; fix it, then run `make notebooks`."
            text = _texts(output)
            if MISSING_RECORDING in text:
                return f"{where} printed that a recording is missing; record it with `make record`."
            if any(line.startswith("Error: ") for line in text.splitlines()):
                return f"{where} printed an error ({text.strip()[:80]!r}); fix it, then run `make notebooks`."
    return None


def run_all(paths: list[Path], out: Path) -> list[Path]:
    """`akash-nb run`: execute each lesson, write executed copies to `out`, return the failures."""
    ensure_folder(out, "The output folder", "give --out a folder you can write", writable=True)
    failures = []
    for path in paths:
        started = time.monotonic()
        nb, error = execute(path)
        nbformat.write(nb, out / path.name)
        took = time.monotonic() - started
        if error:
            failures.append(path)
            print(f"FAIL {path.name} ({took:.1f} s): {error}", flush=True)
        else:
            print(f"ok   {path.name} ({took:.1f} s) -> {out / path.name}", flush=True)
    return failures


# What differs between two replays of the same recordings (tests/sanitize.cfg masks the same for nbval): a
# lesson whose outputs differ only here is left byte-identical, so re-running every lesson after recording
# one leaves no churn in the others.
TIMINGS = (
    (re.compile(r"\d+\.\d+ s\b"), "N.NN s"),  # latencies and durations
    (re.compile(r"chatcmpl-[A-Za-z0-9_-]+"), "chatcmpl-ID"),  # response ids
)


def _same_but_for_timings(text: str, path: Path) -> bool:
    """Whether the lesson at `path` already holds `text`, up to TIMINGS."""
    try:
        old = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    for pattern, replacement in TIMINGS:
        text, old = pattern.sub(replacement, text), pattern.sub(replacement, old)
    return text == old


def refresh(paths: list[Path]) -> list[Path]:
    """`make notebooks`: re-execute under replay and write normalized outputs back into the lessons."""
    failures = []
    for path in paths:
        started = time.monotonic()
        nb, error = execute(path, {"AKASH_NB_PROVIDER": "replay"})
        refused = problem(nb, path.name)
        if error or refused:
            failures.append(path)
            print(f"FAIL {refused or f'{path.name}: {error}'} (not rewritten)", flush=True)
            continue
        fresh = nbformat.writes(normalize(nb)) + "\n"
        if _same_but_for_timings(fresh, path):
            print(f"ok   {path.name} ({time.monotonic() - started:.1f} s, unchanged)", flush=True)
            continue
        try:
            path.write_text(fresh, encoding="utf-8")
        except OSError as failed:  # read-only, or the disk is full: the lesson keeps its old outputs
            failures.append(path)
            print(
                f"FAIL {path.name}: {path} cannot be written ({failed.strerror}); make it writable "
                "(chmod u+w) and run make notebooks again.",
                flush=True,
            )
            continue
        print(f"ok   {path.name} ({time.monotonic() - started:.1f} s)", flush=True)
    return failures


# --- `akash-nb record`: the lessons' HTTP recorded for replay -------------------------------------------


@dataclass(frozen=True)
class Usage:
    """What a run did with the recordings, read from the used file."""

    outcomes: dict[str, set[str]]  # outcome -> recording keys

    @classmethod
    def read(cls, path: Path) -> Usage:
        outcomes: dict[str, set[str]] = {}
        for line in path.read_text().splitlines() if path.exists() else []:
            key, _, outcome = line.partition(" ")
            outcomes.setdefault(outcome, set()).add(key)
        return cls(outcomes)

    def keys(self, *outcomes: str) -> set[str]:
        return set().union(*(self.outcomes.get(o, set()) for o in outcomes))


def record(
    paths: list[Path],
    *,
    upstream: str | None = None,
    folder: Path | None = None,
    fresh: bool = False,
    prune: bool = False,
    out: Callable[[str], None] = print,
) -> int:
    """Execute each notebook with its HTTP recorded from `upstream` (see `loopback.upstream_spec`); report
    written, reused and unused recordings."""
    where = cassettes.recordings_folder(folder)
    if not paths:
        out(f"No notebooks to record; recordings in {cassettes.shown_folder(where)} left as they are.")
        return 0
    upstream = loopback.upstream_spec(upstream)
    source = loopback.resolve_upstream(upstream)  # fail early (and start the embedded model once, here)
    where.mkdir(parents=True, exist_ok=True)
    out(
        f"Recording {len(paths)} notebook(s) from {source.label} ({source.base_url}) into "
        f"{cassettes.shown_folder(where)}{', all afresh' if fresh else ''}."
    )
    fd, used_name = tempfile.mkstemp(prefix="akash-nb-used-", suffix=".txt")
    os.close(fd)
    used = Path(used_name)
    env = {
        "AKASH_NB_PROVIDER": "replay",
        cassettes.MODE_ENV: "rerecord" if fresh else "record",
        cassettes.UPSTREAM_ENV: upstream,
        cassettes.FOLDER_ENV: str(where),
        cassettes.USED_ENV: str(used),
    }
    failures = 0
    try:
        for path in paths:
            _, error = execute(path.resolve(), env, solutions=True)
            if error:
                failures += 1
                out(f"FAIL {path}: {error.splitlines()[0]}")
            else:
                out(f"ok   {path}")
        usage = Usage.read(used)
    finally:
        used.unlink(missing_ok=True)
    written, reused = usage.keys("written"), usage.keys("reused") - usage.keys("written")
    out(f"{len(written)} recording(s) written, {len(reused)} reused.")
    unused = [p for p in cassettes.recordings(where) if p.stem not in usage.keys("written", "reused")]
    if unused:
        if prune and not failures:
            for p in unused:
                p.unlink()
            out(f"Deleted {len(unused)} unused recording(s): " + ", ".join(p.name for p in unused))
        else:
            why = " (not pruned: a notebook failed)" if prune else " (delete them with --prune)"
            out(f"{len(unused)} unused recording(s){why}: " + ", ".join(p.name for p in unused))
    return 1 if failures else 0
