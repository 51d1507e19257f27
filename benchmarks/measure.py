"""Run a benchmark contender as a whole program in a fresh process: its wall time, its peak RSS
(the kernel's figure for the largest single process it started), the CPU seconds of all its
processes (user + system: on a shared machine the figure other loads disturb least) and its stdout."""

from __future__ import annotations

import subprocess
import sys

WRAPPER = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter(); p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)\n"
    "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(time.perf_counter() - t, r.ru_maxrss / 1024, p.returncode, r.ru_utime + r.ru_stime)\n"
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
    seconds, rss, out, rc, _ = measure_cpu(cmd, env)
    return seconds, rss, out, rc


def measure_cpu(cmd: list[str], env: dict | None = None) -> tuple[float, float, str, int, float]:
    """:func:`measure_rc`, and the CPU seconds of every process the run waited for."""
    out = subprocess.run(
        [sys.executable, "-c", WRAPPER, *cmd], stdout=subprocess.PIPE, text=True, check=True, env=env
    ).stdout
    head, _, rest = out.partition("\n")
    seconds, rss, rc, cpu = head.split()
    return float(seconds), float(rss), rest, int(rc), float(cpu)
