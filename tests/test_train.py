"""The trainer on CPU with the packaged MiniLM (one torch thread, tiny batches)."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch  # noqa: E402  (make test installs the train extra: a missing torch must fail)
from click.testing import CliRunner  # noqa: E402
from conftest import EXAMPLES  # noqa: E402

from lenprof.cli import main  # noqa: E402
from lenprof.tokenize import packaged_model_path  # noqa: E402
from lenprof.train.data import GroupSampler, Row, batches  # noqa: E402
from lenprof.train.loss import info_nce  # noqa: E402

torch.set_num_threads(1)
MODEL = str(packaged_model_path())


def reference_info_nce(q, p, group_size, temperature, in_batch):
    """The loss written out with plain Python math, one query at a time."""
    total = 0.0
    for i in range(len(q)):
        candidates = range(len(p)) if in_batch else range(i * group_size, (i + 1) * group_size)
        scores = [sum(a * b for a, b in zip(q[i], p[j], strict=True)) / temperature for j in candidates]
        positive = scores[list(candidates).index(i * group_size)]
        total += math.log(sum(math.exp(s) for s in scores)) - positive
    return total / len(q)


@pytest.mark.parametrize("in_batch", [True, False])
def test_info_nce_matches_a_plain_reference(in_batch):
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(3, 5, generator=g), dim=-1)
    p = torch.nn.functional.normalize(torch.randn(3 * 4, 5, generator=g), dim=-1)
    got = info_nce(q, p, group_size=4, temperature=0.05, in_batch=in_batch).item()
    assert got == pytest.approx(reference_info_nce(q.tolist(), p.tolist(), 4, 0.05, in_batch), rel=1e-5)


def test_uniform_scores_give_ln_candidates():
    q = torch.nn.functional.normalize(torch.ones(2, 3), dim=-1)
    p = q.repeat_interleave(4, dim=0)  # every passage identical: every score equal
    assert info_nce(q, p, 4, 0.02, in_batch=True).item() == pytest.approx(math.log(8), rel=1e-5)
    assert info_nce(q, p, 4, 0.02, in_batch=False).item() == pytest.approx(math.log(4), rel=1e-5)


def test_sampler_invariants():
    rows = [Row(f"q{i}", [f"p{i}a", f"p{i}b"], [f"n{i}{k}" for k in range(i)]) for i in range(6)]
    sampler = GroupSampler(rows, group_size=4, seed=1)
    assert sampler.skipped == 1  # row 0 has no negatives at all
    assert sampler.short_rows == 2  # rows 1 and 2 have fewer than 3
    e0, e1 = sampler.epoch(0), sampler.epoch(1)
    assert e0 == GroupSampler(rows, 4, seed=1).epoch(0)  # deterministic
    assert e0 != e1  # resampled each epoch
    for row, group in zip(rows[1:], e0, strict=True):
        assert group.query == row.query and len(group.passages) == 4
        assert group.passages[0] in row.pos
        negs = group.passages[1:]
        assert all(n in row.neg for n in negs)
        if len(row.neg) >= 3:
            assert len(set(negs)) == 3  # without replacement when there are enough
        else:
            assert set(negs) == set(row.neg)  # every negative before any repeats


def test_groups_carry_the_row_prompt_to_training():
    from lenprof.options import ScanOptions

    rows = [Row("q", ["p"], ["n"], prompt="Given a web search query: "), Row("r", ["s"], ["t"])]
    groups = GroupSampler(rows, 2).epoch(0)
    texts = ScanOptions(query_instruction="Query: ")
    assert [texts.query_text(g.query, g.prompt) for g in groups] == [
        "Given a web search query: q",
        "Query: r",
    ]


def test_batches_never_repeat_a_query_or_positive():
    groups = GroupSampler(
        [Row("same", ["p"], ["n1", "n2"])] * 3 + [Row(f"q{i}", [f"p{i}"], ["x", "y"]) for i in range(5)], 2
    ).epoch(0)
    out = batches(groups, batch_size=3, seed=0, drop_last=False)
    for batch in out:
        assert len({g.query for g in batch}) == len(batch) and len({g.passages[0] for g in batch}) == len(
            batch
        )
    assert sorted(g.query for b in out for g in b) == sorted(g.query for g in groups)  # nothing lost


def run_train(tmp_path, *args):
    return CliRunner().invoke(
        main,
        ["train", str(EXAMPLES / "msmarco.jsonl"), "--output-dir", str(tmp_path), "--model", MODEL,
         "--batch-size", "2", "--train-group-size", "3", "--query-max-len", "32", "--passage-max-len", "64", *args],
        catch_exceptions=False,
    )  # fmt: skip


def fixed_batch_loss(model_dir: str) -> float:
    from transformers import AutoTokenizer

    from lenprof.train.model import Embedder

    rows = [json.loads(line) for line in (EXAMPLES / "msmarco.jsonl").read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = Embedder(model_dir, "mean").eval()
    with torch.no_grad():
        q = model(
            **tok(
                [r["query"] for r in rows], truncation=True, max_length=32, padding=True, return_tensors="pt"
            )
        )
        passages = [t for r in rows for t in [r["pos"][0], *r["neg"][:2]]]
        p = model(**tok(passages, truncation=True, max_length=64, padding=True, return_tensors="pt"))
    return info_nce(q, p, 3, 0.02, in_batch=True).item()


def test_a_short_run_lowers_the_loss_and_saves_a_loadable_model(tmp_path):
    result = run_train(tmp_path, "--max-steps", "10", "--learning-rate", "1e-4", "--warmup-ratio", "0")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("trained 10 steps in ")
    assert "0 recoveries" in result.stdout
    assert fixed_batch_loss(str(tmp_path)) < fixed_batch_loss(MODEL)
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, 11)) and all(
        isinstance(m["loss"], float) for m in metrics
    )
    assert (tmp_path / "loss.png").stat().st_size > 10_000
    assert (tmp_path / "data" / "clean.jsonl").exists() and (tmp_path / "data" / "profile.json").exists()

    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    AutoModel.from_pretrained(str(tmp_path))
    st = SentenceTransformer(str(tmp_path), device="cpu")
    assert st.max_seq_length == 64
    assert [type(m).__name__ for m in st] == ["Transformer", "Pooling", "Normalize"]
    assert st[1].get_config_dict()["pooling_mode"] == "mean"  # the packaged model's pooling, carried over
    emb = st.encode(["a query"], convert_to_tensor=True)
    assert emb.norm().item() == pytest.approx(1.0, abs=1e-4)


def test_single_candidate_is_refused(tmp_path):
    result = run_train(tmp_path, "--batch-size", "1", "--train-group-size", "1")
    assert result.exit_code == 2
    assert "each query has one candidate, so the loss is exactly 0 and nothing learns" in result.stderr


def test_an_absurd_learning_rate_is_caught_and_recovered(tmp_path):
    result = run_train(tmp_path, "--max-steps", "14", "--learning-rate", "5", "--warmup-ratio", "0", "--collapse-steps", "3",
                       "--max-recoveries", "2", "--eval-split", "0.3")  # fmt: skip
    report = json.loads((tmp_path / "train_report.json").read_text())
    kinds = [e["kind"] for e in report["events"]]
    assert any(k in kinds for k in ("persistent_zero", "uniform_collapse", "non_finite")), kinds
    assert "recovered" in kinds
    assert report["recoveries"] >= 1
    assert "restored the weights from before step" in result.stderr
    if report["stopped"]:  # recoveries ran out: a clear message and exit 1
        assert result.exit_code == 1 and "stopped: " in result.stdout
    assert "eval_base" in report and "eval_trained" in report


def test_resume_continues_from_the_last_checkpoint(tmp_path):
    assert run_train(tmp_path, "--max-steps", "4", "--save-steps", "2").exit_code == 0
    result = run_train(tmp_path, "--max-steps", "6", "--save-steps", "2", "--resume")
    assert result.exit_code == 0 and "resumed from" in result.stderr and "step-4" in result.stderr
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_random_seed_is_reproducible(tmp_path):
    random.seed(0)
    a, b = tmp_path / "a", tmp_path / "b"
    run_train(a, "--max-steps", "2")
    run_train(b, "--max-steps", "2")
    la = [json.loads(x)["loss"] for x in (a / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["loss"] for x in (b / "metrics.jsonl").read_text().splitlines()]
    assert la == lb


def test_length_grouped_batches_cut_padding_and_lose_nothing():
    rows = [
        Row(f"q{i}", [f"p{i}" + "x" * (i % 7) * 10], [f"n{i}" + "y" * (i % 5) * 10, f"m{i}"])
        for i in range(40)
    ]
    groups = GroupSampler(rows, 2).epoch(0)
    plain = batches(groups, 4, seed=0)
    grouped = batches(groups, 4, seed=0, by_length=True)

    def padding(bs):
        return sum(
            max(len(p) for g in b for p in g.passages) * len(b) * 2
            - sum(len(p) for g in b for p in g.passages)
            for b in bs
        )

    assert sorted(g.query for b in grouped for g in b) == sorted(g.query for b in plain for g in b)
    assert padding(grouped) < padding(plain)


def test_data_parallel_with_two_processes(tmp_path):
    """DDP through accelerate, on CPU with the gloo backend: the same code path as several GPUs."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    accelerate = str(Path(sys.executable).parent / "accelerate")
    proc = subprocess.run(
        [accelerate, "launch", "--cpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", "-m", "lenprof", "train", str(EXAMPLES / "msmarco.jsonl"), "--output-dir", str(tmp_path),
         "--model", MODEL, "--max-steps", "2", "--batch-size", "2", "--train-group-size", "3", "-q"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "trained 2 steps" in proc.stdout
    assert [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [
        1,
        2,
    ]  # main process only
    assert (tmp_path / "model.safetensors").exists()
