"""``-``: rows from standard input, JSON Lines or one JSON array (its first byte is ``[``).

A pipe cannot be cut into byte ranges, so the driver reads it as it reads a ``.gz`` file, in
pieces of physical lines (an array is read whole). The first bytes are read at discovery, to tell
an array from JSON Lines, and kept in :attr:`InputFile.head`. Rows from stdin are named
``<stdin>`` in the profile, the examples and the rejects.

A pipe cannot be read twice either, yet a scan may need to: when the fast count's self-check
fails, the whole scan runs again with the tokenizer alone (``scan.scan_plan``). So what is read
from stdin is also written to a spool (:class:`_Spool`), and a second read replays it, then goes
on with the pipe where the first stopped. Spooling while the first pass reads costs one
sequential write and never delays the scan; the alternative, recounting without a second read,
would mean keeping every text of the corpus in memory. The spool is an unnamed temporary file
(in ``TMPDIR``): the system removes it when it is closed or the process ends, however it ends,
a ``kill -9`` included. If it cannot be written (no room), the scan goes on without it, and only
a second read fails, with exit 2 and what to do.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from lenprof.errors import InputError
from lenprof.io.files import BLOCK, TEMP_MARK, InputFile, starts_array

NAME = "<stdin>"
_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}


def _stream():
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise InputError("-: there is no standard input to read")
    return stream


def open_stdin() -> InputFile:
    """stdin as an input, its format told from its first bytes; a terminal is refused."""
    stream = _stream()
    if stream.isatty():
        raise InputError(
            "-: stdin is a terminal, not data; pipe rows in (cat rows.jsonl | lenprof scan -) or name the files"
        )
    head = b""
    try:
        while not head.strip():  # to the first byte that is not whitespace, or the end
            block = stream.read1(BLOCK) if hasattr(stream, "read1") else stream.read(BLOCK)
            if not block:
                break
            head += block
    except OSError as exc:  # e.g. stdin opened for writing only (`0>FILE` where `<FILE` was meant)
        how = " (it is open for writing only)" if _write_only(stream) else ""
        raise InputError(
            f"-: stdin cannot be read{how}: {exc.strerror or exc}; pipe rows in (cat rows.jsonl | lenprof scan -) "
            "or name the files"
        ) from exc
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            raise InputError(
                f"-: stdin holds {kind} data; decompress it first (e.g. zcat rows.jsonl.gz | lenprof scan -)"
            )
    global _spool
    release()
    _spool = _Spool(head, stream)
    return InputFile(NAME, "json" if starts_array(head) else "jsonl", known_size=_size(stream), head=head)


def _write_only(stream) -> bool:
    try:
        import fcntl

        return fcntl.fcntl(stream.fileno(), fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY
    except (ImportError, OSError, ValueError):
        return False


def _size(stream) -> int:
    """The size of a file redirected to stdin (``< rows.jsonl``); 0 for a pipe, which has none."""
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def blocks(item: InputFile, where: dict[str, int] | None = None) -> Iterator[bytes]:
    """stdin's bytes, a block at a time: the head read at discovery, then the rest; read again,
    what the spool holds first."""
    where = where if where is not None else {}
    where["disk"] = where["decompressed"] = 0
    spool = _spool if _spool is not None and _spool.head is item.head else _Spool(item.head, _stream())
    while block := spool.read(where["decompressed"]):
        where["decompressed"] += len(block)
        where["disk"] = min(where["decompressed"], item.size)
        yield block


class _Spool:
    """Every byte taken from stdin, so that it can be read more than once (see the module's
    docstring): ``read(at)`` gives the bytes from ``at``, from the spool where an earlier read
    already took them from the pipe, else the pipe's next block (kept in the spool on the way).

        >>> import io
        >>> spool = _Spool(b"ab\\n", io.BytesIO(b"cd\\n"))  # the head, and what stdin holds after it
        >>> spool.read(0), spool.read(3), spool.read(6)
        (b'ab\\n', b'cd\\n', b'')
        >>> spool.read(0)  # read again: from the spool
        b'ab\\ncd\\n'
        >>> spool.close()
    """

    def __init__(self, head: bytes, stream: BinaryIO):
        self.head = head
        self.stream = stream
        self.taken = len(head)  # bytes taken from stdin
        self.ended = False  # stdin has given its last byte
        self.file = None  # the spool, made when stdin holds more than its head
        self.failed: str | None = None  # why the spool could not be written

    def read(self, at: int) -> bytes:
        if at < self.taken:  # a second read
            if self.failed is not None:
                raise InputError(
                    f"{NAME}: must be read again (the fast count's self-check failed, or the scan "
                    f"outgrew --memory-budget and reads its input three times), but it could not be "
                    f"kept for that ({self.failed}); set TMPDIR to a folder with room, or give the "
                    "rows as a file"
                )
            if self.file is None:
                return self.head[at:]
            return os.pread(self.file.fileno(), min(BLOCK, self.taken - at), at)
        if self.ended:
            return b""
        try:
            block = self.stream.read(BLOCK)
        except OSError as exc:
            raise InputError(f"{NAME}: cannot be read ({exc.strerror or exc})") from exc
        if not block:
            self.ended = True
            return b""
        self._keep(block)
        self.taken += len(block)
        return block

    def _keep(self, block: bytes) -> None:
        if self.failed is not None:
            return
        try:
            if self.file is None:
                self.file = tempfile.TemporaryFile(prefix=f"stdin{TEMP_MARK}", buffering=0)
                self._write(self.head, 0)
            self._write(block, self.taken)
        except OSError as exc:
            self.failed = f"{exc.strerror or exc} in {tempfile.gettempdir()}"
            self.close()

    def _write(self, data: bytes, at: int) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self.file.fileno(), view, at)  # type: ignore[union-attr]
            view, at = view[n:], at + n

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


_spool: _Spool | None = None  # stdin's, made at discovery: there is one stdin, read by one scan


def release() -> None:
    """Close stdin's spool (its disk space is freed at once); a scan does it when it ends."""
    global _spool
    if _spool is not None:
        _spool.close()
        _spool = None
