"""Writing files so that a reader, a crash or a kill never sees half of one.

Every file fcnseg writes goes through :func:`atomic_write`: a temporary file beside the target,
fsync, then rename. A failure on the way (a full disk, a read-only folder, a file where a folder
should be) removes the temporary file and becomes one line naming the path.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import FcnsegError

__all__ = ["TEMP_PREFIX", "atomic_write", "check_writable", "output_error", "remove_stale"]

# Temporary files are named ".<target name>.fcnseg-<random>" beside their target.
TEMP_PREFIX = ".fcnseg-"

# The process's umask, read once at import (reading it means setting it, which is not
# thread-safe); new files get mode 0666 less it.
_UMASK = os.umask(0)
os.umask(_UMASK)


def output_error(path: str | Path, exc: OSError, *, flag: str = "") -> FcnsegError:
    """The one line for an output that cannot be written (``flag``: the option that named it)."""
    reasons = {
        errno.ENOSPC: "the disk is full; free space or write elsewhere",
        errno.EDQUOT: "the disk quota is exceeded; free space or write elsewhere",
        errno.EROFS: "the file system is read-only; write elsewhere",
        errno.EACCES: "permission denied; write to a folder you may write to",
        errno.EPERM: "permission denied; write to a folder you may write to",
        errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
        errno.EEXIST: "a part of the path is a file, not a folder; choose another path",
        errno.EISDIR: "it is a folder; give a file name",
    }
    reason = reasons.get(exc.errno, f"{exc.strerror or exc}; choose another path")
    return FcnsegError(f"{flag + ' ' if flag else ''}{path}: cannot write: {reason}")


def check_writable(path: str | Path, *, flag: str = "", folder: bool = False) -> None:
    """Refuse an output that :func:`atomic_write` could not write, before the work that would
    fill it (an evaluation, an export, a calibration can take minutes): ``path`` is a folder
    where a file is wanted (or a file where a ``folder`` is), or the nearest existing folder
    above it is a file, read-only or not the user's to write. Nothing is created.

    Raises:
        FcnsegError: one line naming ``flag``, ``path`` and the fix (:func:`output_error`).
    """
    path = Path(path)
    if path.is_dir() != folder and path.exists():
        raise output_error(path, OSError(errno.ENOTDIR if folder else errno.EISDIR, ""), flag=flag)
    above = path if folder and path.is_dir() else path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():  # a file where a folder would have to be made
        raise output_error(path, OSError(errno.ENOTDIR, ""), flag=flag)
    if not os.access(above, os.W_OK | os.X_OK):
        read_only = hasattr(os, "statvfs") and os.statvfs(above).f_flag & os.ST_RDONLY
        raise output_error(path, OSError(errno.EROFS if read_only else errno.EACCES, ""), flag=flag)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, and rename it over
    ``path``: readers see the old file or the new one, never a partial one.

    Raises:
        FcnsegError: the file cannot be written (its path and the reason in one line).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_PREFIX}", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    os.close(fd)
    try:
        write(Path(tmp))
        # mkstemp (and safetensors) make the file private (0600); give it the mode a new file
        # gets (0666 less the umask), so that others may read the model as before.
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise output_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale(folder: str | Path, *, recursive: bool = False) -> int:
    """Remove the temporary files a killed writer left in ``folder`` (and below it, if
    ``recursive``); their count. Only files of :func:`atomic_write`'s own naming are touched."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    pattern = f".*{TEMP_PREFIX}*"
    stale = [
        p for p in (folder.rglob(pattern) if recursive else folder.glob(pattern)) if p.is_file()
    ]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)
