"""The out-of-core scan (``engine/external.py``, issue 23): past ``--memory-budget`` the
corpus-wide decisions are made over sorted, partitioned runs on disk, and every output is the
one the in-memory scan writes, byte for byte: the oracle here is the in-memory scan itself,
whose decisions other tests hold to independent counts."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lenprof.cli import main
from lenprof.engine import external, partition
from lenprof.engine.local import LocalEngine
from lenprof.engine.plan import Outputs, make_plan
from lenprof.engine.run import scan_plan
from lenprof.engine.spill import Partitions, Runs
from lenprof.io.buckets import LengthBuckets

# what differs between two scans of the same data: timings, the keyed self-check sample, the
# record of how it ran, and where the outputs went
RUN_ONLY = ("seconds", "tokenize_s", "out_of_core")


def outputs(folder: Path, split: bool = False) -> Outputs:
    buckets = LengthBuckets.parse("0,16,64", str(folder / "split")) if split else None
    return Outputs(str(folder / "clean.jsonl"), str(folder / "rejects.jsonl"), str(folder / "profile.json"),
                   str(folder / "report.html"), buckets)  # fmt: skip


def written(folder: Path) -> dict[str, object]:
    """Every output of a scan into ``folder``: the profile without what only says how it ran,
    the rest as bytes, with the folder's name taken out."""
    found: dict[str, object] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            found[str(path.relative_to(folder))] = path.read_bytes().replace(str(folder).encode(), b"OUT")
    profile = json.loads(found.pop("profile.json"))
    for key in RUN_ONLY:
        profile["run"].pop(key, None)
    profile["run"]["counting"].pop("self_checked")
    found["profile.json"] = profile
    found.pop("report.html")  # holds the run's timings; its data is the profile's
    return found


def scan_both(paths, tmp: Path, workers: int = 1, split: bool = False, **plan_args) -> tuple[dict, dict]:
    """The same scan in memory and out of core: each one's outputs."""
    got = []
    for name, out_of_core in (("memory", False), ("disk", True)):
        folder = tmp / name
        folder.mkdir()
        plan = make_plan(paths, outputs=outputs(folder, split), **plan_args)
        plan = dataclasses.replace(plan, out_of_core=out_of_core)
        profile = scan_plan(plan, LocalEngine(workers))[0]
        assert bool(profile.run.out_of_core) == out_of_core
        got.append(written(folder))
    return got[0], got[1]


def test_the_shared_examples_give_the_same_outputs_out_of_core(corpus_files, tmp_path, monkeypatch):
    """Every FlagEmbedding example, in shards of a few rows, over two workers; partitions so
    small that each splits again (down to a few records a group)."""
    monkeypatch.setattr(external, "SORT_COST", 4096)  # a group: 1 MiB / 4 / 4096 = 64 bytes
    memory, disk = scan_both(
        [str(p) for p in corpus_files], tmp_path, workers=2, split=True, shard_bytes=3000,
        memory_budget=1 << 20,
    )  # fmt: skip
    assert disk == memory
    profile = memory["profile.json"]
    assert profile["samples"]["dropped"]["duplicate_row"] > 0  # the decisions had work to do
    assert any(name.startswith("split/") for name in memory)


def test_the_partitions_are_decided_at_the_workers(corpus_files, tmp_path, monkeypatch):
    """The sorts of the decisions are spread over the workers, as the shards are: every group of
    every partition goes to a worker (``ShardWork.decide``), both workers get some, and the
    outputs are the in-memory ones."""
    from lenprof.engine.pool import ProcessPool

    monkeypatch.setattr(external, "SORT_COST", 4096)
    sent: list[tuple[int, str]] = []
    submit = ProcessPool.submit

    def recording(self, worker, call, *args):
        if call == "decide":
            sent.append((worker, args[1]))
        return submit(self, worker, call, *args)

    monkeypatch.setattr(ProcessPool, "submit", recording)
    memory, disk = scan_both(
        [str(p) for p in corpus_files], tmp_path, workers=2, shard_bytes=3000, memory_budget=1 << 20
    )
    assert disk == memory
    steps = {step for _, step in sent}
    assert steps == {"duplicates", "owners", "joined", "unique_fields"}
    assert {worker for worker, _ in sent} == {0, 1}


def test_in_order_hands_results_on_in_job_order_with_a_window_in_flight():
    """Results come back in any order; ``then`` sees them in job order, a skipped job as None,
    and no more than the window is ever at the workers, each sent to the least busy one."""

    class Shuffled:
        workers = 2

        def __init__(self):
            self.pending, self.most, self.to = [], 0, []

        def submit(self, worker, call, n, *args):
            self.pending.append(SimpleNamespace(index=n, got=(call, *args)))
            self.to.append(worker)
            self.most = max(self.most, len(self.pending))

        def result(self):
            return "x", self.pending.pop(random.Random(len(self.pending)).randrange(len(self.pending)))

    ex, seen = Shuffled(), []
    jobs = [("a", (1,)), None, ("b", (2, 3)), ("a", (4,)), None, None, ("c", ())]
    external.in_order(ex, 3, iter(jobs), lambda n, value: seen.append((n, value and value.got)))
    assert seen == [
        (0, ("a", 1)),
        (1, None),
        (2, ("b", 2, 3)),
        (3, ("a", 4)),
        (4, None),
        (5, None),
        (6, ("c",)),
    ]
    assert ex.most <= 3
    assert set(ex.to) == {0, 1}


ROW_TEXTS = ["a", "b", "the same text", "x y", "", "q1", "p1", "n1", "Ünïcode", "中文"]


@st.composite
def corpora(draw) -> bytes:
    """Rows whose texts come from a small pool, so rows and texts repeat across shards; now and
    then a line that is no row."""
    lines = []
    for _ in range(draw(st.integers(0, 40))):
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(st.sampled_from([b"{broken", b"", b"[]", b'{"query": "only"}'])))
            continue
        text = st.sampled_from(ROW_TEXTS)
        row = {
            "query": draw(text),
            "pos": draw(st.lists(text, max_size=2)),
            "neg": draw(st.lists(text, max_size=3)),
        }
        lines.append(json.dumps(row, ensure_ascii=False).encode())
    return b"\n".join(lines)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=corpora(), shard_bytes=st.sampled_from([1, 64, 1 << 20]), sort_cost=st.sampled_from([4, 4096]))
def test_any_corpus_gives_the_same_outputs_out_of_core(
    tok, tmp_path_factory, monkeypatch, data, shard_bytes, sort_cost
):
    tmp = tmp_path_factory.mktemp("ooc")
    src = tmp / "in.jsonl"
    src.write_bytes(data)
    if not any(b'"pos"' in line for line in data.split(b"\n")):
        return  # no row with query and pos: refused before a row is decided (test_layouts)
    monkeypatch.setattr(external, "SORT_COST", sort_cost)
    memory, disk = scan_both(str(src), tmp, tokenizer=tok, shard_bytes=shard_bytes, memory_budget=1 << 20)
    assert disk == memory


def tiny_rows(path: Path, n: int) -> Path:
    """``n`` rows of two distinct texts each, every 100th a copy of the row before it."""
    lines = []
    for i in range(n):
        lines.append(lines[-1] if i % 100 == 99 else f'{{"query": "q{i}", "pos": ["p{i}"]}}')
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_scan_that_outgrows_its_budget_starts_again_out_of_core(tmp_path):
    """20,000 tiny rows need about 1 MB of decisions in memory: past half of a 1 MiB budget the
    scan starts again out of core, and says so; the outputs are those of a scan in memory."""
    src = tiny_rows(tmp_path / "tiny.jsonl", 20_000)
    runs = {}
    for budget in ("1M", "2G"):
        out = tmp_path / budget
        result = CliRunner().invoke(main, ["scan", str(src), "-q", "--min-neg", "0", "--memory-budget", budget, "--out", str(out / "profile.json"),
                                           "--clean-out", str(out / "clean.jsonl"), "--rejects", str(out / "rejects.jsonl")])  # fmt: skip
        assert result.exit_code == 0, result.output
        runs[budget] = (json.loads((out / "profile.json").read_text()), (out / "clean.jsonl").read_bytes())
    (small, clean_small), (large, clean_large) = runs["1M"], runs["2G"]
    assert small["run"].get("out_of_core") is True and "out_of_core" not in large["run"]
    assert clean_small == clean_large
    assert small["samples"] == large["samples"] and small["samples"]["dropped"] == {"duplicate_row": 200}
    assert small["fields"] == large["fields"] and small["recommendation"] == large["recommendation"]
    assert {f: small["fields"][f]["unique"] for f in small["fields"]} == {
        "query": 19_800,
        "pos": 19_800,
        "neg": 0,
        "passage": 19_800,
    }


@pytest.mark.parametrize("value", ["lots", "0", "-5M", "1.5.G", "nan", "1K"])
def test_a_memory_budget_that_is_no_size_or_too_small_is_one_line_and_exit_2(tmp_path, value):
    src = tiny_rows(tmp_path / "tiny.jsonl", 10)
    result = CliRunner().invoke(main, ["scan", str(src), "-q", "--memory-budget", value])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "--memory-budget" in result.output or "memory budget" in result.output


def test_partitions_group_every_record_of_a_fingerprint_in_fingerprint_order(tmp_path):
    """Split as often as a group's limit asks (down to one fingerprint's records), the groups
    hold every record once, each fingerprint in one group, in fingerprint order."""
    rng = np.random.default_rng(0)
    fps = rng.integers(0, 2**64, 300, dtype=np.uint64)
    fps = np.concatenate([fps, fps[:100], np.full(50, fps[0])])  # repeats, and one fingerprint 51 times
    records = np.zeros(len(fps), partition.TEXTS)
    records["fp"], records["shard"] = fps, np.arange(len(fps))
    for limit in (1, 200, 1 << 20):
        parts = Partitions(tmp_path, f"t{limit}", partition.TEXTS, bits=4)
        for chunk in np.array_split(records, 7):
            parts.add(chunk)
        parts.flush()
        groups = [g for p in range(16) for (g,) in parts.groups(p, limit)]
        together = np.concatenate(groups)
        assert sorted(together["shard"].tolist()) == list(range(len(fps)))
        firsts = [int(g["fp"].min()) for g in groups]
        assert firsts == sorted(firsts)
        owners = {}
        for n, g in enumerate(groups):
            for fp in set(g["fp"].tolist()):
                assert owners.setdefault(fp, n) == n
        assert not list(tmp_path.glob(f"t{limit}-*"))  # read once, removed


def test_runs_give_each_shard_its_records_file_after_file(tmp_path):
    runs = Runs(tmp_path, "r", partition.PLACE, chunk=3)
    rng = random.Random(1)
    expected: dict[int, list] = {}
    for f in range(4):
        shards = sorted(rng.choices(range(20), k=rng.randrange(0, 30)))
        pos = list(range(len(shards)))
        runs.write(partition.records(partition.PLACE, shard=np.array(shards), pos=np.array(pos) + 1000 * f))
        for s, p in zip(shards, pos, strict=True):
            expected.setdefault(s, []).append(p + 1000 * f)
    for s in range(20):
        assert runs.take(s)["pos"].tolist() == expected.get(s, [])
    runs.remove()
    assert not os.listdir(tmp_path)


def test_runs_hold_a_chunk_a_file_not_what_was_written(tmp_path):
    """The records handed to ``Runs.write`` are on disk, not in memory: 32M tiny rows once
    peaked at 623 MiB in the driver because each file's empty start was a view of them."""
    import gc
    import weakref

    runs = Runs(tmp_path, "r", partition.PLACE, chunk=4)
    written = []
    for _ in range(3):
        records = partition.records(partition.PLACE, shard=np.repeat(np.arange(10), 100), pos=np.arange(1000))
        written.append(weakref.ref(records))
        runs.write(records)
        del records
    gc.collect()
    assert all(ref() is None for ref in written)
    runs.take(0)
    for _, _, held, _ in runs._files:  # what is read and not taken: about a chunk, a file
        assert held.base is None or held.base.nbytes <= 2 * 100 * partition.PLACE.itemsize
    runs.remove()


def test_stdin_out_of_core_reads_the_same_shards_in_every_sweep(tmp_path):
    """A pipe is read once from the pipe and then twice from its spool, in blocks of other
    sizes: the shards are cut by lines, so each sweep sees the same ones (an unsized pipe is
    taken as 1 GiB: over 32 times a 1 MiB budget, out of core from the start)."""
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(
        json.dumps({"query": f"q{i}", "pos": [f"p{i}"], "neg": [f"n{i}", f"n{i + 1}"]}) + "\n" for i in range(40_000)
    ))  # fmt: skip
    got = {}
    for name, how in (("pipe", ["-", "--memory-budget", "1M"]), ("file", [str(src)])):
        out = tmp_path / name
        cmd = [sys.executable, "-m", "lenprof", "scan", *how, "--shard-size", "1", "-q", "--format", "json",
               "--clean-out", str(out / "clean.jsonl")]  # fmt: skip
        if name == "pipe":
            with open(src, "rb") as rows:  # a pipe, not a file: cat's stdout
                cat = subprocess.Popen(["cat"], stdin=rows, stdout=subprocess.PIPE)
                done = subprocess.run(cmd, stdin=cat.stdout, capture_output=True, text=True)
                cat.stdout.close()
                cat.wait()
        else:
            done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        profile = json.loads(done.stdout)
        got[name] = (
            profile["samples"],
            profile["fields"],
            (out / "clean.jsonl").read_bytes(),
            profile["run"].get("out_of_core"),
        )
    assert got["pipe"][3] is True and got["file"][3] is None
    assert got["pipe"][:3] == got["file"][:3]


def test_a_spill_without_room_is_one_line_and_exit_2(tmp_path, monkeypatch):
    """A full disk under TMPDIR (faked where the spill writes its partitions): one line that
    names the folder and says what to do; the spill and every output are gone."""
    from lenprof.engine import spill

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spill, "_scatter", full)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # TMPDIR is read again
    src = tiny_rows(tmp_path / "tiny.jsonl", 20_000)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["scan", str(src), "-q", "--min-neg", "0", "--memory-budget", "1M",
                                       "--clean-out", str(out / "clean.jsonl")])  # fmt: skip
    assert result.exit_code == 2
    line = result.output.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert "No space left on device" in line and "TMPDIR" in line and str(tmp_path / "tmp") in line
    assert list((tmp_path / "tmp").iterdir()) == [] and not (out / "clean.jsonl").exists()


def test_a_restart_out_of_core_is_said_and_the_rows_counted_once(tmp_path):
    src = tiny_rows(tmp_path / "tiny.jsonl", 20_000)
    result = CliRunner().invoke(main, ["scan", str(src), "--min-neg", "0", "--memory-budget", "1M", "--shard-size", "0.1",
                                       "--progress-interval", "0", "--format", "json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("lenprof: ")]
    said = [n for n, line in enumerate(lines) if "outgrew --memory-budget" in line]
    assert len(said) == 1
    rows = [
        int(line.split()[1].replace(",", "")) for line in lines[said[0] + 1 :] if line.split()[2] == "rows,"
    ]
    assert rows and rows[-1] == 20_000  # counted from zero again: the first try's rows are not added
