"""The one nbval command line the tests and `make bench` run, as `make nbval-replay` runs it: every output
compared exactly, after tests/sanitize.cfg masks ports and timings, in the current Python environment."""

from __future__ import annotations

import sys
from pathlib import Path

SANITIZE = Path(__file__).resolve().parent / "sanitize.cfg"
NBVAL_FLAGS = ("-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env", "--nbval-sanitize-with")


def nbval_command(*notebooks: Path | str) -> list[str]:
    """pytest with nbval over `notebooks`, in this interpreter."""
    return [sys.executable, "-m", "pytest", *NBVAL_FLAGS, str(SANITIZE), *map(str, notebooks)]
