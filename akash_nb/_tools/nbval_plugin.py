"""How nbval reports a lesson, as a pytest plugin (the `pytest11` entry point loads it wherever the dev
set is installed): every cell is named as akash_nb names it everywhere (`notebooks.cell_name`), and once a
cell raises, the cells after it are skipped, as JupyterLab's Run All stops there, instead of each failing
on a name that cell never defined (a knock-on `NameError: name 'response' is not defined`)."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nbval.plugin import IPyNbCell, IPyNbFile, NbCellError  # type: ignore[import-untyped]

from . import notebooks

RAISED = "Cell execution caused an exception"  # nbval's message for a cell that raised (not a mismatch)
_FAILED = pytest.StashKey[str]()  # on a notebook's item: the name of the cell that raised first


def _name(item: IPyNbCell) -> str:
    index = next(i for i, cell in enumerate(item.parent.nb.cells) if cell is item.cell)
    return notebooks.cell_name(item.parent.nb, index)


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Generator[None, Any, Any]:
    collectors = yield
    for collector in collectors:
        if isinstance(collector, IPyNbFile):
            collector.collect = lambda collect=collector.collect: _renamed(collect())
    return collectors


def _renamed(cells: Iterable[IPyNbCell]) -> Iterator[IPyNbCell]:
    """nbval's items for a notebook, each named by `notebooks.cell_name` instead of "Cell <n>"."""
    for cell in cells:
        name, numbered = _name(cell), f"Cell {cell.cell_num}:"
        item = IPyNbCell.from_parent(
            cell.parent, name=name, cell_num=cell.cell_num, cell=cell.cell, options=cell.options
        )
        item.reportinfo = lambda item=item: (item.fspath, 0, item.nodeid)
        report = item.repr_failure
        item.repr_failure = lambda excinfo, report=report, numbered=numbered, name=name: str(
            report(excinfo)
        ).replace(numbered, f"{name}:", 1)
        yield item


def pytest_runtest_setup(item: pytest.Item) -> None:
    if isinstance(item, IPyNbCell) and _FAILED in item.parent.stash:
        pytest.skip(
            f"not run: {item.parent.stash[_FAILED]} raised above it and Run All stops there; fix that cell"
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    error = call.excinfo.value if call.excinfo is not None else None
    if isinstance(item, IPyNbCell) and isinstance(error, NbCellError) and str(error) == RAISED:
        item.parent.stash.setdefault(_FAILED, item.name)
    return report
