"""Writing a file so that a reader, or a kill at any moment, sees the old file or the new one, never part."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, text: str, *, mode: int = 0o600, durable: bool = False) -> Path:
    """Write `text` to `path` (UTF-8) through a temporary file in the same folder, created with `mode`
    (0600: only you can read it, from the first byte), then renamed over `path` in one step.

    `durable`: also flush the data and the rename to disk, so a power cut keeps the new file too."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.chmod(tmp, mode)  # mkstemp makes 0600; a committed file (a recording) is 0644
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:  # the rename itself; folders cannot be opened this way on Windows, where it is skipped
        with contextlib.suppress(OSError):
            folder = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
    return path
