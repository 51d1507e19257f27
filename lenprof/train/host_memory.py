"""Freed tensors go back to the system: a CPU training step's peak host memory is what it holds.

A step on the CPU allocates and frees gigabytes of activations in blocks of a few MB. glibc's
malloc serves a block above its mmap threshold (128 KiB at start) with its own ``mmap``, given
back when freed; but each time such a block is freed it raises that threshold to the block's
size (up to 32 MiB), after which blocks of that size come from the heap, where memory freed
between blocks still in use cannot be given back. A training process then holds more than its
live tensors, by an amount that changes from run to run. Fixing the threshold
(``MALLOC_MMAP_THRESHOLD_``) gives every large block back, but each new one is then faulted in
4 KiB page by page; with glibc's transparent huge pages for malloc (``glibc.malloc.hugetlb=1``)
it is faulted in 2 MiB at a time. Measured on this project's 2-core machine, MiniLM, a step of 8
queries and 64 passages of 192 tokens, four steps: 5,955 MiB and 58.9 s as glibc starts, 4,725
MiB and 64.1 s with the threshold fixed, 4,731 MiB and 49.6 s with huge pages too. But whole runs
of ``lenprof train`` were slower with them: 0.63 samples/s against 0.80 over 60 steps, and over
12 steps (benchmarks/host_memory.py, taken in turn, twice) the same user CPU time (189-192 s)
but twice the system time: 41-43 s against 19-21 s. Huge pages are faulted in by the kernel,
which zeroes each one and, on a machine whose free memory is scattered, compacts memory first
(the machine's ``compact_stall`` count in ``/proc/vmstat`` rose by 2,546 during one such run);
on four bare steps right after one another there was little to compact. What it costs depends on
the machine's state, not on lenprof.

So it is a choice, not the default: with ``LENPROF_HOST_MEMORY=lean``, ``lenprof train``
starts itself again with both set (:func:`relaunch`: glibc reads them as a process starts). In
another trainer's process the same is those two variables in its environment. The default keeps
glibc as it is and has the step keep less instead (attention.py, recompute.py: 6 x 188 MB fewer
kept for backward in that step, the same numbers to the bit).
"""

from __future__ import annotations

import os
import platform
import sys

MARK = "LENPROF_HOST_MEMORY"  # "lean": relaunch with the settings; "set" once relaunched
SETTINGS = {"MALLOC_MMAP_THRESHOLD_": "131072"}
HUGE_PAGES = "glibc.malloc.hugetlb=1"


def lean_environment(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the threshold fixed and malloc's huge pages on (other tunables kept)."""
    tunables = [
        t for t in env.get("GLIBC_TUNABLES", "").split(":") if t and not t.startswith("glibc.malloc.hugetlb=")
    ]
    return {**env, **SETTINGS, "GLIBC_TUNABLES": ":".join([*tunables, HUGE_PAGES]), MARK: "set"}


def relaunch(argv: list[str]) -> None:
    """Start ``argv`` in this process's place with :func:`lean_environment`, when asked
    (``LENPROF_HOST_MEMORY=lean``) where glibc reads it (Linux with glibc); else return."""
    if (
        os.environ.get(MARK) != "lean"
        or not sys.platform.startswith("linux")
        or platform.libc_ver()[0] != "glibc"
    ):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, lean_environment(dict(os.environ)))
