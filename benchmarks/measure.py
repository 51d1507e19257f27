"""Run a benchmark contender as a whole program in a fresh process: its wall time, its peak RSS
(the kernel's figure for the largest single process it started) and its stdout."""

from __future__ import annotations

import subprocess
import sys

WRAPPER = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter(); p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)\n"
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, p.returncode)\n"
    "print(p.stdout, end='')\n"
)


def measure(cmd: list[str]) -> tuple[float, float, str]:
    """Seconds, peak RSS in MiB and stdout of one run of ``cmd`` (in a wrapper of its own, so
    that the peak is this run's alone)."""
    out = subprocess.run(
        [sys.executable, "-c", WRAPPER, *cmd], stdout=subprocess.PIPE, text=True, check=True
    ).stdout
    head, _, rest = out.partition("\n")
    seconds, rss, rc = head.split()
    if rc != "0":
        raise SystemExit(f"{' '.join(cmd[:4])} failed with {rc}")
    return float(seconds), float(rss), rest
