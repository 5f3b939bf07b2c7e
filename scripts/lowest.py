"""Print pip constraints that pin every requirement pyproject.toml declares to its lowest allowed version.

    python scripts/lowest.py > build/lowest.txt
    pip install -c build/lowest.txt -e ".[lab]" pytest ...

pip has no "lowest" resolution, so this is how `make lowest` (and CI's lowest-versions job) proves the
declared lower bounds true: whatever gets installed from pyproject's lists is installed at its floor, and the
offline unit tests run against that. A requirement's floor is the version in its `>=`, `==` or `~=` clause;
one without a floor is an error (an unbounded requirement is a promise nothing checks). Markers are kept
(`tomli==2.0; python_version < '3.11'`), extras dropped (constraints cannot carry them), and the package's
references to its own extras (such as `akash-nb[local]`) skipped: their requirements are listed on their own.
Needs Python 3.11+ (tomllib) or tomli, and `packaging`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def floor(requirement: Requirement) -> str:
    """The lowest version a requirement allows, from its `>=`, `==` or `~=` clause."""
    floors = [s.version for s in requirement.specifier if s.operator in (">=", "==", "~=")]
    if len(floors) != 1:
        raise SystemExit(f"pyproject.toml: {requirement} needs exactly one lower bound (>=, == or ~=)")
    return floors[0]


def constraints(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """One `name==floor` line (with its marker) for each requirement, the core set first, then each extra."""
    project = tomllib.loads(pyproject.read_text())["project"]
    own = canonicalize_name(project["name"])
    lines = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        lines.extend(extra)
    out: list[str] = []
    for line in lines:
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) == own:
            continue
        pin = f"{requirement.name}=={floor(requirement)}"
        out.append(f"{pin}; {requirement.marker}" if requirement.marker else pin)
    return out


def main() -> int:
    print("\n".join(constraints()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
