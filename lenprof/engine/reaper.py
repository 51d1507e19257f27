"""A watcher that stops a local Ray once the scan that started it is gone.

``ray.init()`` starts a head node (GCS, raylet, agents, workers) as children of the scan. A scan
that ends normally shuts it down; a scan that is killed (SIGKILL, OOM) cannot, and those
processes would run on. The watcher runs in its own session, notes the scan's descendants five
times a second, and when its stdin closes without the word ``done`` (the scan died), kills each of them
that is still the same process (checked by start time, so a reused process id is never hit).
Either way it then kills the Ray processes of the scan's session that lost their parent since
the scan started, looking again for three seconds: a raylet that stops soon after it started
(a small scan) or that outlives the scan by a moment can leave agents it was still starting.

    python .../lenprof/engine/reaper.py SCAN_PID   # stdin: a pipe from the scan; imports nothing
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

SWEEPS = 10  # looks, 0.3 s apart, once the scan is gone


def _stat(pid: int | str) -> list[str] | None:
    """/proc/PID/stat after the command name: [state, ppid, pgrp, session, ...]."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def ray_orphans(session: str, since: int) -> dict[int, str]:
    """Ray's processes of the scan's session that lost their parent since the scan started: a
    raylet that died with the scan leaves the agents it started to init."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        fields = _stat(entry) if entry.isdigit() else None
        if not fields or fields[1] != "1" or fields[3] != session or int(fields[19]) < since:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                # a Ray worker that has not yet set its title is ".../python\0.../ray/_private/...":
                # the "/ray/" lies past the interpreter's path, so read the whole command line
                name = fh.read(4096)
        except OSError:
            continue
        if name.startswith(b"ray::") or b"/ray/" in name:
            found[int(entry)] = fields[19]
    return found


def descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid`` with its start time (Linux /proc; none elsewhere)."""
    parent_of: dict[int, int] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return {}
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as fh:
                parent_of[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found: dict[int, str] = {}
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parent_of.items() if parent in frontier and p not in found}
        for p in frontier:
            started = start_time(p)
            if started is not None:
                found[p] = started
    return found


def watch(scan: int) -> None:
    fields = _stat(scan)
    if fields is None:
        return
    session, since = fields[3], int(fields[19])
    known: dict[int, str] = {}
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0.2)
        if ready:
            if sys.stdin.read() == "done":
                # Ray was shut down; only agents a raylet started as it stopped may be left
                known = {}
            break
        if start_time(scan) is None:
            break
        known.update(descendants(scan))
    # A raylet that outlives the scan by a moment may still start agents: look a few times.
    for _ in range(SWEEPS):
        victims = dict(known)
        for pid in known:  # what they started since the last look
            victims.update(descendants(pid))
        victims.update(ray_orphans(session, since))
        victims.pop(os.getpid(), None)  # the watcher is the scan's child too
        for pid, started in victims.items():
            if start_time(pid) == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        known.update(victims)
        time.sleep(0.3)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch(int(sys.argv[1]))
