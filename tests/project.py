"""The checkout's root and pyproject.toml's [project] table, read once for every test that needs them."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the dev extra brings tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RECORDINGS = ROOT / "recordings"  # the committed answers replay serves
REPLAY = {"AKASH_NB_PROVIDER": "replay", "AKASH_NB_RECORDINGS": str(RECORDINGS)}  # the lessons under replay
