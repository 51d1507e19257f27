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


def measure(cmd: list[str], env: dict | None = None, ok: tuple[int, ...] = (0,)) -> tuple[float, float, str]:
    """Seconds, peak RSS in MiB and stdout of one run of ``cmd`` (in a wrapper of its own, so
    that the peak is this run's alone); ``ok``: the exit codes that are results, not failures."""
    seconds, rss, out, rc = measure_rc(cmd, env)
    if rc not in ok:
        raise SystemExit(f"{' '.join(cmd[:4])} failed with {rc}")
    return seconds, rss, out


def measure_rc(cmd: list[str], env: dict | None = None) -> tuple[float, float, str, int]:
    """:func:`measure`, and the exit code, whatever it is."""
    out = subprocess.run(
        [sys.executable, "-c", WRAPPER, *cmd], stdout=subprocess.PIPE, text=True, check=True, env=env
    ).stdout
    head, _, rest = out.partition("\n")
    seconds, rss, rc = head.split()
    return float(seconds), float(rss), rest, int(rc)
