"""Freed tensors go back to the system: a training step's peak host memory is what it holds.

A step on the CPU allocates and frees gigabytes of activations in blocks of a few MB. glibc's
malloc serves a block above its mmap threshold (128 KiB at start) with its own ``mmap``, given
back when freed; but each time such a block is freed it raises that threshold to the block's
size (up to 32 MiB), after which blocks of that size come from the heap, where memory freed
between blocks still in use cannot be given back. A training process then holds more than its
live tensors, by an amount that changes from run to run: on this project's 2-core machine a
MiniLM step of 8 queries and 64 passages of 192 tokens peaked at 5.6 to 6.3 GiB over eight
runs, and at 4.6 GiB in both runs with the threshold fixed (``mallopt(M_MMAP_THRESHOLD)``, which
also stops its adjustment), within the machine's noise in time. ``lenprof train`` fixes it as it starts; in another
trainer's process the same is ``MALLOC_MMAP_THRESHOLD_=131072`` in its environment.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
THRESHOLD = 128 * 1024  # glibc's own starting value, kept fixed


def return_freed_memory() -> bool:
    """Fix glibc's mmap threshold in this process, so that freed large blocks go back to the
    system; False where there is no glibc (macOS, musl) or it refused."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD))
    except (OSError, AttributeError):  # no libc by that name, or one without mallopt
        return False
