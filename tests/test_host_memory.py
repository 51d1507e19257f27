"""lenprof train gives freed tensors back to the system (``train/host_memory.py``): checked
against the real allocator, in a fresh process each way, and the relaunch that sets it up."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lenprof.train.host_memory import MARK, lean_environment

pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux")

PROBE = r"""
import torch
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
x = torch.empty(8 << 20, dtype=torch.uint8); x.fill_(1); del x  # glibc raises its threshold to 8 MiB
base = rss()
big, small = [], []
for _ in range(100):  # 2 MiB blocks, with small ones between them in the heap
    t = torch.empty(2 << 20, dtype=torch.uint8); t.fill_(1); big.append(t); small.append(torch.ones(10))
del t, big
print(round(rss() - base))
"""


def test_freed_blocks_go_back_to_the_system_in_the_lean_environment():
    plain = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")}
    held = {}
    for way, env in (("plain", plain), ("lean", lean_environment(plain))):
        out = subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env
        )
        held[way] = int(out.stdout)
    assert held["plain"] > 150, held  # 200 MiB freed, kept by the heap: what the settings are for
    assert held["lean"] < 20, held


SHOW = "import os; print(os.environ.get('MALLOC_MMAP_THRESHOLD_'), os.environ.get('GLIBC_TUNABLES'))"
RELAUNCH = (
    f"import sys; from lenprof.train.host_memory import relaunch; relaunch([sys.executable, '-c', {SHOW!r}])"
)


@pytest.mark.parametrize("mark", ["lean", None, "set"])
def test_relaunch_starts_the_process_again_once_with_the_settings_when_asked(mark):
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", MARK)}
    env["GLIBC_TUNABLES"] = "glibc.malloc.arena_max=2"  # the user's own tunables are kept
    if mark:
        env[MARK] = mark
    out = subprocess.run(
        [sys.executable, "-c", RELAUNCH], capture_output=True, text=True, check=True, env=env
    )
    if mark != "lean":
        assert out.stdout == ""  # left as it is (not asked, or relaunched already): the script prints nothing
    else:
        assert out.stdout.split() == ["131072", "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"]
