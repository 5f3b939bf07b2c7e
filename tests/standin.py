"""Stand-in programs for the tests: a small Python script that answers some options as a real program would
and otherwise exits with a code, runnable the way each OS runs a program named by a variable or found on
PATH: a `#!/bin/sh` file on Linux and macOS, a `.cmd` file on Windows (which reads no `#!` line)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

SCRIPT = """import json, sys
answers, stderr, code, record = {answers!r}, {stderr!r}, {code!r}, {record!r}
option = sys.argv[1] if len(sys.argv) > 1 else ""
if option in answers:
    print(answers[option])
    sys.exit(0)
if record:
    with open(record, "a", encoding="utf-8") as log:
        log.write(json.dumps(sys.argv[1:]) + "\\n")
if stderr:
    print(stderr, file=sys.stderr)
sys.exit(code)
"""


def program(
    folder: Path,
    name: str,
    *,
    answers: dict[str, str],
    stderr: str = "",
    code: int = 0,
    record: Path | None = None,
) -> Path:
    """Write program `name` into `folder`: `name --option` prints `answers[option]`; any other command line
    is appended to `record` (one JSON list a line), prints `stderr` and exits with `code`. Returns the path
    to run (`name`, or `name.cmd` on Windows)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / f"{name}-standin.py"
    script.write_text(
        SCRIPT.format(answers=answers, stderr=stderr, code=code, record=str(record) if record else ""),
        encoding="utf-8",
    )
    if sys.platform == "win32":
        path = folder / f"{name}.cmd"
        path.write_text(f'@"{sys.executable}" -I "{script}" %*\r\n@exit /b %ERRORLEVEL%\r\n')
        return path
    path = folder / name
    path.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -I {shlex.quote(str(script))} "$@"\n')
    path.chmod(0o755)
    return path
