"""FlagEmbedding's loss options in the bundled trainer, each against a computation written out
by hand: negatives across devices (two real gloo processes), knowledge distillation (kl_div,
m3_kd_loss), and the disk snapshot."""

from __future__ import annotations

import json
import math
import os
import tempfile

import pytest
import torch
import torch.multiprocessing as mp

from lenprof.train.loss import contrastive_loss, info_nce

torch.set_num_threads(1)
B, G, D, T = 3, 4, 8, 0.05  # per-process batch, group size, dimension, temperature


def shards(world: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(world * B, D, generator=g), dim=-1)
    p = torch.nn.functional.normalize(torch.randn(world * B * G, D, generator=g), dim=-1)
    teacher = torch.randn(world * B, G, generator=g)
    return q, p, teacher


def _worker(rank: int, world: int, init: str, kd: str | None, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    q, p, teacher = shards(world)
    q = q[rank * B : (rank + 1) * B].clone().requires_grad_(True)
    p = p[rank * B * G : (rank + 1) * B * G].clone().requires_grad_(True)
    t = teacher[rank * B : (rank + 1) * B] if kd else None
    loss = contrastive_loss(
        q, p, G, T, in_batch=True, cross_device=True, teacher_scores=t, kd_loss_type=kd or "kl_div"
    )
    loss.backward()
    torch.save({"loss": loss.item(), "q_grad": q.grad, "p_grad": p.grad}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("kd", [None, "m3_kd_loss"])
def test_negatives_across_two_gloo_processes_equal_one_process_on_the_concatenated_batch(kd):
    world = 2
    with tempfile.TemporaryDirectory() as out:
        mp.start_processes(
            _worker, args=(world, f"file://{out}/store", kd, out), nprocs=world, start_method="spawn"
        )
        got = [torch.load(f"{out}/rank{r}.pt") for r in range(world)]
    q, p, teacher = shards(world)
    q.requires_grad_(True)
    p.requires_grad_(True)
    if kd:
        expected = contrastive_loss(q, p, G, T, in_batch=True, teacher_scores=teacher, kd_loss_type=kd)
    else:
        expected = info_nce(q, p, G, T, in_batch=True)  # (W * B) queries against (W * B * G) passages
    expected.backward()
    for r, g in enumerate(got):
        assert g["loss"] == pytest.approx(expected.item(), rel=1e-6)
        # each process holds the gradient of the global loss for its own slice
        assert torch.allclose(g["q_grad"], q.grad[r * B : (r + 1) * B], atol=1e-6)
        assert torch.allclose(g["p_grad"], p.grad[r * B * G : (r + 1) * B * G], atol=1e-6)


def reference_kd(q, p, teacher, kind, in_batch):
    """FlagEmbedding's distillation written out one query at a time in plain Python."""
    q, p, teacher = q.tolist(), p.tolist(), teacher.tolist()
    n = len(q)

    def score(i, j):
        return sum(a * b for a, b in zip(q[i], p[j], strict=True)) / T

    def softmax(xs):
        m = max(xs)
        e = [math.exp(x - m) for x in xs]
        return [x / sum(e) for x in e]

    def logsumexp(xs):
        m = max(xs)
        return m + math.log(sum(math.exp(x - m) for x in xs))

    total = 0.0
    for i in range(n):
        t = softmax(teacher[i])
        own = [score(i, i * G + g) for g in range(G)]
        every = [score(i, j) for j in range(len(p))] if in_batch else own
        target = i * G if in_batch else 0
        if kind == "kl_div":  # cross-entropy to the teacher over the own group, plus InfoNCE
            total += -sum(t[g] * (own[g] - logsumexp(own)) for g in range(G))
            total += logsumexp(every) - every[target]
        else:  # m3: member g is the target, members before it masked out, weighted by the teacher
            for g in range(G):
                kept = [s for j, s in enumerate(every) if j not in {i * G + h for h in range(g)}]
                total += t[g] * (logsumexp(kept) - every[i * G + g])
    return total / n


@pytest.mark.parametrize("kind, in_batch", [("kl_div", True), ("kl_div", False), ("m3_kd_loss", True)])
def test_knowledge_distillation_matches_a_plain_reference(kind, in_batch):
    q, p, teacher = shards(1, seed=3)
    got = contrastive_loss(q, p, G, T, in_batch=in_batch, teacher_scores=teacher, kd_loss_type=kind).item()
    assert got == pytest.approx(reference_kd(q, p, teacher, kind, in_batch), rel=1e-5)


def test_a_teacher_that_agrees_with_the_student_lowers_kl_div():
    q, p, _ = shards(1, seed=5)
    student = torch.einsum("bd,bgd->bg", q, p.view(B, G, D)) / T  # (B, G)
    agree = contrastive_loss(q, p, G, T, teacher_scores=student, kd_loss_type="kl_div")
    disagree = contrastive_loss(q, p, G, T, teacher_scores=-student, kd_loss_type="kl_div")
    assert agree < disagree


def test_the_sampler_carries_teacher_scores_with_the_passages():
    from lenprof.rows.groups import GroupSampler, Row

    rows = [Row(f"q{i}", [f"p{i}", f"P{i}"], [f"n{i}{k}" for k in range(5)], None, [10.0 + i, 20.0 + i],
                [float(k) + i / 10 for k in range(5)]) for i in range(4)]  # fmt: skip
    for row, group in zip(rows, GroupSampler(rows, 3, seed=2).epoch(0), strict=True):
        lookup = dict(zip(row.pos + row.neg, row.pos_scores + row.neg_scores, strict=True))
        assert group.scores == [lookup[t] for t in group.passages]


@pytest.mark.slow
def test_disk_snapshot_recovers_exactly_as_the_memory_one(tmp_path):
    from click.testing import CliRunner
    from conftest import EXAMPLES

    from lenprof.cli import main
    from lenprof.count.tokenizer import packaged_model_weights

    runs = {}
    for where in ("memory", "disk"):
        out = tmp_path / where
        result = CliRunner().invoke(
            main,
            ["train", str(EXAMPLES / "msmarco.jsonl"), "--output-dir", str(out), "--model", str(packaged_model_weights()),
             "--batch-size", "2", "--train-group-size", "3", "--query-max-len", "32", "--passage-max-len", "64",
             "--max-steps", "12", "--learning-rate", "1e20", "--warmup-ratio", "0", "--snapshot", where],
            catch_exceptions=False,
        )  # fmt: skip
        assert result.exit_code == 1 and "restored the weights from before step" in result.stderr
        runs[where] = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        assert not (out / "healthy.pt").exists()  # the disk copy is gone once the run ends
    assert json.dumps(runs["disk"]) == json.dumps(runs["memory"])
    assert os.path.getsize(tmp_path / "disk" / "model.safetensors") > 1e6


@pytest.mark.slow
def test_lenprof_train_distils_from_the_rows_scores(tmp_path):
    """The flag end to end: the scan keeps pos_scores/neg_scores aligned, the sampler carries
    them, the loss uses them; rows without them are refused with the file named."""
    from click.testing import CliRunner
    from conftest import EXAMPLES

    from lenprof.cli import main
    from lenprof.count.tokenizer import packaged_model_weights

    rows = [json.loads(line) for line in (EXAMPLES / "msmarco.jsonl").read_text().splitlines()]
    # FlagEmbedding's example rows carry a teacher's scores, one per passage
    assert all(len(r["neg_scores"]) == len(r["neg"]) for r in rows)
    bare = tmp_path / "bare.jsonl"
    bare.write_text(
        "".join(json.dumps({k: v for k, v in r.items() if not k.endswith("_scores")}) + "\n" for r in rows)
    )
    args = ["--model", str(packaged_model_weights()), "--batch-size", "2", "--train-group-size", "3",
            "--query-max-len", "32", "--passage-max-len", "64", "--max-steps", "2", "--kd-loss-type", "kl_div"]  # fmt: skip
    result = CliRunner().invoke(
        main, ["train", str(EXAMPLES / "msmarco.jsonl"), "--output-dir", str(tmp_path / "kd"), *args]
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "kd" / "train_report.json").read_text())
    assert report["config"]["kd_loss_type"] == "kl_div" and report["steps"] == 2
    assert report["probe"]["end"] < report["probe"]["start"]  # distillation plus InfoNCE fell
    plain = CliRunner().invoke(main, ["train", str(bare), "--output-dir", str(tmp_path / "p"), *args])
    assert plain.exit_code == 2
    assert (
        "knowledge distillation needs pos_scores and neg_scores" in plain.stderr
        and "clean.jsonl" in plain.stderr
    )
