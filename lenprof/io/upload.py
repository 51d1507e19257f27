"""Writing an object in storage whole or not at all: what an output's commit does with an object
(see ``io/transaction.py``), since an object store has no rename.

pyarrow's S3 output stream is a multipart upload that is completed when the stream is closed, by
``close()`` or by its destructor, and Python cannot abort it (``Abort`` is C++ only). A stream
cut short by an exception in Python would be completed as a partial object. So the upload reads
a finished local file through a memory map (a local read error is a crash, which completes
nothing) on a thread of its own (a signal's handler runs on the main thread, which waits for
it: an object begun is finished whole, then the run stops), and a part the server refuses or
never answers fails the close, which then completes nothing: the upload stays incomplete,
invisible, until the bucket's lifecycle rule (``AbortIncompleteMultipartUpload``) removes it.
"""

from __future__ import annotations

import threading

from lenprof.io.storage import locate

CHUNK = 10 << 20  # pyarrow's S3 part size: a part per write
IN_FLIGHT = 8  # parts written before waiting for them: bounds an upload's memory to 80 MiB


def upload(local: str, url: str) -> None:
    """Copy the finished file ``local`` to the object ``url``: the object is whole or unchanged
    (see above); raises ``OSError`` when it could not be written."""
    import pyarrow as pa

    fs, where = locate(url)
    failed: list[BaseException] = []
    done = threading.Event()

    def send() -> None:
        out = None
        try:
            with pa.memory_map(local) as src:
                data = src.read_buffer()
                out = fs.open_output_stream(where, compression=None)
                for n, at in enumerate(range(0, data.size, CHUNK)):
                    out.write(data.slice(at, min(CHUNK, data.size - at)))
                    if n % IN_FLIGHT == IN_FLIGHT - 1:
                        out.flush()  # waits for the parts in flight (and raises if one failed)
                out.close()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failed.append(exc)
        finally:
            # a stream left open is closed by its destructor: here, now (its failed part fails
            # that close too), not at exit, when pyarrow's threads are gone and it would hang
            out = None  # noqa: F841
            done.set()

    threading.Thread(target=send, name="lenprof-upload").start()
    # An Event, not Thread.join: a join that a signal's exception interrupts marks the thread
    # stopped (Python 3.11), and the interpreter would then exit without waiting for it.
    try:
        done.wait()
    except BaseException as stop:  # a signal: the object in flight is finished first
        done.wait()
        stop.uploaded = not failed  # type: ignore[attr-defined]
        raise
    if failed:
        raise failed[0]
