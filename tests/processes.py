"""Child processes the tests start: an environment without the developer's settings, and one way to run."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path


def environment_without(*prefixes: str) -> dict[str, str]:
    """os.environ minus every variable whose name starts with one of `prefixes` (AKASH if none given)."""
    dropped = prefixes or ("AKASH",)
    return {k: v for k, v in os.environ.items() if not k.startswith(dropped)}


def run(
    command: Sequence[str | Path],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `command` to its end, its output captured as text and nothing on its stdin."""
    return subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL
    )
