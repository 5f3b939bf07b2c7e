"""Every path the package reads or creates goes through here: a file is read only when it is a regular
file (a FIFO, a socket or a device such as /dev/zero is refused before it is opened, so nothing hangs or
reads forever), a folder is made or checked once, and a file is written so that a reader, or a kill at any
moment, sees the old file or the new one, never part. Each failure is one FileError sentence naming the
path and the fix (see `exceptions.file_error`)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from .exceptions import file_error

# What stands at a path instead of a regular file, by its stat mode, as a sentence says it.
SPECIAL = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)


class NotRegularError(OSError):
    """A path that holds something other than a regular file or a folder: a FIFO, a socket, a device."""


def special_kind(mode: int) -> str:
    return next((name for test, name in SPECIAL if test(mode)), "not a regular file")


def check_regular(path: str | os.PathLike[str]) -> os.stat_result:
    """The stat of the regular file at `path` (symlinks followed); an OSError otherwise, before anything
    opens it: FileNotFoundError, IsADirectoryError, ELOOP for a symlink loop, NotRegularError for a FIFO,
    a socket or a device (opening a FIFO blocks until a writer comes; /dev/zero never ends)."""
    info = os.stat(path)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "it is a folder, not a file", str(path))
    if not stat.S_ISREG(info.st_mode):
        kind = special_kind(info.st_mode)
        raise NotRegularError(errno.EINVAL, f"it is {kind}, not a regular file", str(path))
    return info


def read_bytes(path: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """The bytes of the regular file at `path` (at most `limit` + 1 of them, so a caller can tell it is
    too long); an OSError as `check_regular` says, never a hang. O_NONBLOCK and fstat again after opening:
    a FIFO put there between the check and the open is refused too, not waited on."""
    check_regular(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = special_kind(info.st_mode)
            raise NotRegularError(errno.EINVAL, f"it is {kind}, not a regular file", str(path))
        chunks, left = [], (limit + 1 if limit is not None else -1)
        while left != 0:
            chunk = os.read(fd, 1 << 20 if left < 0 else min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left = left - len(chunk) if left > 0 else left
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike[str], limit: int | None = None) -> str:
    """`read_bytes` decoded as UTF-8 (a UnicodeDecodeError when it is not)."""
    return read_bytes(path, limit).decode("utf-8")


def read_regular(path: str | os.PathLike[str], what: str, fix: str, limit: int | None = None) -> str:
    """The UTF-8 text of the regular file at `path`; a FileError naming it (as `what`) and `fix` when it
    is missing, a folder, a FIFO, a socket, a device, a symlink loop, unreadable or not UTF-8."""
    try:
        return read_text(path, limit)
    except (OSError, UnicodeDecodeError) as error:
        raise file_error(path, what, error, fix) from error


def ensure_folder(
    path: str | os.PathLike[str], what: str, fix: str, *, mode: int = 0o777, writable: bool = False
) -> Path:
    """The folder at `path`, made (with its parents) when it is not there; a FileError naming it and `fix`
    when a file (or a FIFO, a device) stands where it or a parent belongs, a symlink loops, or it cannot be
    made. `writable`: also check a file can be created in it (a read-only filesystem, no permission)."""
    folder = Path(path)
    try:
        os.makedirs(folder, mode=mode, exist_ok=True)
        if not stat.S_ISDIR(os.stat(folder).st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "it is a file, not a folder", str(folder))
        if writable:
            fd, probe = tempfile.mkstemp(prefix=".akash-nb-probe-", dir=folder)
            os.close(fd)
            os.unlink(probe)
    except FileExistsError as error:  # makedirs(exist_ok=True) says so when a non-folder is there
        raise file_error(folder, what, _not_a_folder(folder, error), fix, folder=True) from error
    except NotADirectoryError as error:
        raise file_error(folder, what, _not_a_folder(folder, error), fix, folder=True) from error
    except OSError as error:
        raise file_error(folder, what, error, fix, folder=True) from error
    return folder


def _not_a_folder(folder: Path, error: OSError) -> OSError:
    """The error for a non-folder at `folder` or one of its parents, saying which and what it is."""
    for place in reversed((folder, *folder.parents)):  # from the root down: the first that is not a folder
        where = "it" if place == folder else f"{place}"
        try:
            mode = os.stat(place).st_mode
        except FileNotFoundError:
            break
        except OSError as failed:
            if failed.errno == errno.ELOOP:
                return OSError(errno.ELOOP, f"{where} is a symlink loop")
            return failed
        if not stat.S_ISDIR(mode):
            kind = "a file" if stat.S_ISREG(mode) else special_kind(mode)
            return OSError(errno.ENOTDIR, f"{where} is {kind}, not a folder")
    return error


def check_writable_target(path: Path) -> None:
    """An OSError unless `path` is absent, a regular file, or a symlink (loop included) that a rename
    replaces: a rename over a FIFO or a device (as root, /dev/null itself) must never happen."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return  # a dangling link: the rename replaces the link
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "it is a folder, not a file", str(path))
    if not stat.S_ISREG(info.st_mode):
        kind = special_kind(info.st_mode)
        raise NotRegularError(errno.EINVAL, f"it is {kind}, not a regular file", str(path))


def write_atomically(
    path: Path,
    text: str,
    *,
    mode: int = 0o600,
    durable: bool = False,
    what: str | None = None,
    fix: str = "",
) -> Path:
    """Write `text` to `path` (UTF-8) through a temporary file in the same folder, created with `mode`
    (0600: only you can read it, from the first byte), then renamed over `path` in one step. `path` must be
    absent or a regular file: a folder, a FIFO or a device there is refused, never replaced.

    `durable`: also flush the data and the rename to disk, so a power cut keeps the new file too.
    `what`: the file as a sentence names it; then a failure is a FileError naming `path` and `fix`, not an
    OSError."""
    try:
        check_writable_target(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        if what is None:
            raise
        raise file_error(path, what, error, fix, writing=True) from error
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.chmod(tmp, mode)  # mkstemp makes 0600; a committed file (a recording) is 0644
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if what is None or not isinstance(error, OSError):
            raise
        raise file_error(path, what, error, fix, writing=True) from error
    if durable:  # the rename itself; folders cannot be opened this way on Windows, where it is skipped
        with contextlib.suppress(OSError):
            folder = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
    return path
