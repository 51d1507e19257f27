"""The errors that stop a run with exit 2 and one line: an input or an output that cannot be used."""

from __future__ import annotations

import errno
import os


class InputError(Exception):
    """An input or output cannot be used at all (missing, unreadable, corrupt). Exit code 2."""


class OutputError(InputError):
    """An output cannot be written. Exit code 2, and the previous outputs stay as they were."""


def write_failed(path: str | os.PathLike, exc: OSError) -> OutputError:
    why = {
        errno.ENOSPC: "the disk is full",
        errno.EFBIG: "the file is larger than this process may write (ulimit -f)",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    return OutputError(f"{path}: cannot write ({why}); no output of this run was changed")
