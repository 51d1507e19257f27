"""``lenprof scan --model`` (issue 25): the rows seen through the base model the user will
fine-tune. Planted faults in real retrieval rows (benchmarks/planted_faults.py: near copies of
the positive among the negatives, rows whose negatives are unrelated text) are found; the scores
written for distillation are sentence-transformers' own ``encode`` and cosine; every way the
model can fail is one line."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lenprof.count.tokenizer import packaged_model_weights

pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]
MODEL = packaged_model_weights()
INSTRUCTION = "Represent this sentence for searching relevant passages: "


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The real console entry point, in its own process, one torch thread (this machine's best)."""
    env = {**os.environ, "LENPROF_DEBUG": "", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "lenprof", *args], capture_output=True, text=True, env=env)


def planted_faults():
    spec = importlib.util.spec_from_file_location("planted_faults", REPO / "benchmarks" / "planted_faults.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """300 real rows with near-copy false negatives planted in a third and unrelated negatives in
    another third, and the truth of it."""
    pf = planted_faults()
    rows, truth = pf.plant(pf.real_rows(300))
    path = tmp_path_factory.mktemp("planted") / "planted.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows, truth


def scan(tmp_path, data, *args, model=MODEL):
    out = tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    result = run_cli(
        "scan", str(data), "--model", str(model), "--tokenizer", str(model), "--out", str(out / "p.json"),
        "--clean-out", str(out / "c.jsonl"), "--rejects", str(out / "r.jsonl"), "-q", *args,
    )  # fmt: skip
    return result, out


def read(out: Path) -> tuple[dict, list[dict], list[dict]]:
    lines = lambda p: [json.loads(x) for x in p.read_text().splitlines() if x.strip()]  # noqa: E731
    return json.loads((out / "p.json").read_text()), lines(out / "c.jsonl"), lines(out / "r.jsonl")


def test_planted_near_copies_are_found_and_removed(tmp_path, planted):
    data, rows, truth = planted
    result, out = scan(tmp_path, data, "--drop-false-negatives")
    assert result.returncode == 0, result.stderr
    profile, cleaned, rejects = read(out)
    kept = {r["query"]: r for r in cleaned}
    copies = truth["false_negatives"]
    found = sum(1 for q, text in copies.items() if q not in kept or text not in kept[q]["neg"])
    removed = profile["samples"]["repaired"]["false_negative_removed"]
    assert found / len(copies) >= 0.9
    assert found / removed >= 0.7, (found, removed)
    # a row left without negatives is dropped with its reason, never lost
    assert len(cleaned) + len(rejects) == len(rows)
    for r in rejects:
        assert r["reason"] == "no_negatives" and "false negatives" in r["detail"]
    # the texts removed are no longer profiled: the negatives counted are those written
    assert profile["fields"]["neg"]["count"] == sum(len(r["neg"]) for r in cleaned)
    example = profile["examples"]["false_negative_removed"][0]
    assert "removed: 'neg'[" in example["detail"]


def test_without_drop_they_are_warnings_and_nothing_changes(tmp_path, planted):
    data, rows, truth = planted
    result, out = scan(tmp_path, data)
    assert result.returncode == 0, result.stderr
    profile, cleaned, _ = read(out)
    assert cleaned == rows  # warned about, written as read
    assert profile["samples"]["warnings"]["false_negative"] >= 0.9 * len(truth["false_negatives"])
    advice = profile["scoring"]["forecast"]["advice"]
    assert any("--drop-false-negatives" in a for a in advice)
    assert "false_negative" in profile["examples"]


def test_rows_with_unrelated_negatives_are_too_easy(tmp_path, planted):
    data, rows, truth = planted
    easy = [r for r in rows if r["query"] in set(truth["too_easy"])]
    path = tmp_path / "easy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in easy))
    result, out = scan(tmp_path, path, "--batch-size", "8")
    assert result.returncode == 0, result.stderr
    profile, _, _ = read(out)
    # the oracle: sentence-transformers' cosines, and InfoNCE in plain numpy at temperature 0.02
    pos, neg = peer_scores(MODEL, easy, None)
    losses = [
        max(np.log1p(np.exp((np.array(n) - p) / 0.02).sum()) for p in ps)
        for ps, n in zip(pos, neg, strict=True)
    ]
    want = sum(1 for x in losses if x < 1e-3)
    assert profile["samples"]["warnings"]["too_easy"] == want
    # most such rows: the rest are rows whose positive the model barely relates to the query
    # (it scores under ~0.2): not too easy, and not what a harder negative would fix
    assert want >= 0.8 * len(easy)
    share = round(100 * want / len(easy))
    assert profile["scoring"]["forecast"]["advice"][0].startswith(
        f"{share}% of rows are too easy for this model"
    )
    weak = [max(p) for p, x in zip(pos, losses, strict=True) if x >= 1e-3]
    assert max(weak) < 0.3, weak


def test_too_easy_is_judged_on_the_negatives_left_after_the_drop(tmp_path):
    """With --drop-false-negatives the trainer reads the row without its false negatives: the
    row is too easy when that row's loss, from the scores written, is below 1e-3 (it was judged
    with the removed negatives, which hid every such row)."""
    rows = [
        {"query": "capital of france", "pos": ["paris is the capital of france"],
         "neg": ["the capital of france is paris", "the stock market fell today"]},
        {"query": "what is a cat", "pos": ["a cat is a small domesticated carnivorous mammal"],
         "neg": ["cats are small domesticated carnivorous mammals", "python is a programming language"]},
        {"query": "how do planes fly", "pos": ["wings generate lift as air flows over them"],
         "neg": ["aircraft wings create lift from airflow", "bananas are yellow"]},
    ]  # fmt: skip
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result, out = scan(tmp_path, data, "--drop-false-negatives", "--add-scores")
    assert result.returncode == 0, result.stderr
    profile, cleaned, _ = read(out)
    assert profile["samples"]["repaired"]["false_negative_removed"] >= 2
    loss = lambda p, n: np.logaddexp.reduce(np.array([p, *n]) / 0.02) - p / 0.02  # noqa: E731
    easy = sum(1 for r in cleaned if max(loss(p, r["neg_scores"]) for p in r["pos_scores"]) < 1e-3)
    assert easy >= 2
    assert profile["samples"]["warnings"].get("too_easy", 0) == easy


def peer_scores(folder: Path, rows: list[dict], instruction: str | None) -> tuple[list, list]:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    model = SentenceTransformer(str(folder), device="cpu")
    queries = [(instruction or "") + r["query"] for r in rows]
    passages = [t for r in rows for t in r["pos"] + r["neg"]]
    q = model.encode(queries, batch_size=32, normalize_embeddings=True)
    p = dict(zip(passages, model.encode(passages, batch_size=32, normalize_embeddings=True), strict=True))
    pos = [[float(q[i] @ p[t]) for t in r["pos"]] for i, r in enumerate(rows)]
    neg = [[float(q[i] @ p[t]) for t in r["neg"]] for i, r in enumerate(rows)]
    return pos, neg


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("instruction", [None, INSTRUCTION])
def test_add_scores_are_sentence_transformers_cosines(tmp_path, docstrings, cls_model, pooling, instruction):
    rows = [json.loads(x) for x in docstrings.read_text().splitlines()[:60]]
    rows[0] = {**rows[0], "pos_scores": [0.5], "neg_scores": [0.1] * len(rows[0]["neg"])}  # replaced
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    folder = MODEL if pooling == "mean" else cls_model
    extra = ["--query-instruction", instruction] if instruction else []
    result, out = scan(tmp_path, data, "--add-scores", *extra, model=folder)
    assert result.returncode == 0, result.stderr
    profile, cleaned, _ = read(out)
    assert profile["scoring"]["pooling"] == pooling
    assert "partial_scores" not in profile["samples"]["warnings"]  # every row written has them
    want_pos, want_neg = peer_scores(folder, rows, instruction)
    assert cleaned[0]["pos_scores"] != [0.5]
    got_pos = [r["pos_scores"] for r in cleaned]
    got_neg = [r["neg_scores"] for r in cleaned]
    assert np.abs(np.array(got_pos) - np.array(want_pos)).max() < 1e-3
    assert np.abs(np.array(got_neg) - np.array(want_neg)).max() < 1e-3


def test_add_scores_replaces_scores_that_would_be_dropped(tmp_path):
    """Scores a row had, of the wrong length or type, are no reason to drop it when --add-scores
    writes its own: the row is kept, scored. Without --add-scores it is dropped, as before."""
    rows = [
        {"query": "what is a cat", "pos": ["a cat is a small mammal"], "neg": ["a dog barks", "a car"],
         "pos_scores": [0.9, 0.8], "neg_scores": [0.1]},
        {"query": "who wrote hamlet", "pos": ["shakespeare did"], "neg": ["macbeth is a play"],
         "pos_scores": "high", "neg_scores": [1]},
        {"query": "how do planes fly", "pos": ["wings make lift"], "neg": ["bananas are yellow"]},
    ]  # fmt: skip
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result, out = scan(tmp_path, data, "--add-scores", "--min-neg", "0")
    assert result.returncode == 0, result.stderr
    profile, cleaned, rejects = read(out)
    assert (len(cleaned), rejects, profile["samples"]["dropped"]) == (3, [], {})
    for r in cleaned:
        assert len(r["pos_scores"]) == len(r["pos"]) and len(r["neg_scores"]) == len(r["neg"])
        assert all(isinstance(x, float) for x in r["pos_scores"] + r["neg_scores"])
    result, out = scan(tmp_path / "plain", data, "--min-neg", "0")
    assert result.returncode == 0, result.stderr
    assert read(out)[0]["samples"]["dropped"] == {"bad_scores": 2}


def test_a_text_over_the_models_limit_is_scored_truncated_and_said(tmp_path):
    long = "a cat is a small domesticated carnivorous mammal. " * 40  # ~400 tokens: MiniLM reads 256
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"query": "what is a cat", "pos": [long], "neg": ["a dog barks"]}) + "\n")
    result = run_cli("scan", str(data), "--model", str(MODEL), "--tokenizer", str(MODEL))
    assert result.returncode == 0, result.stderr
    assert "1 text over the model's limit was scored truncated" in result.stdout


@pytest.mark.parametrize(
    "model, said",
    [
        (
            "{tmp}/nothing-here",
            "--model {tmp}/nothing-here: no such folder; pass a model folder (config.json",
        ),
        ("{tmp}/d.jsonl", "--model {tmp}/d.jsonl: is a file; pass a model folder (config.json"),
        ("{tmp}", "--model {tmp}: the folder has no config.json and no tokenizer.json"),
        ("owner/not-cached", "--model owner/not-cached: not in the Hugging Face cache"),
    ],
)
def test_a_model_that_cannot_be_loaded_is_one_line(tmp_path, model, said):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"query": "q", "pos": ["p"], "neg": ["n"]}) + "\n")
    result = run_cli("scan", str(data), "--model", model.format(tmp=tmp_path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert said.format(tmp=tmp_path) in result.stderr
    assert "tokenizer.json\n" not in result.stderr  # a tokenizer.json is no model


def test_a_broken_model_file_is_one_line(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(MODEL, folder)
    (folder / "model.safetensors").write_bytes(b"not weights")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"query": "q", "pos": ["p"], "neg": ["n"]}) + "\n")
    result = run_cli("scan", str(data), "--model", str(folder), "--tokenizer", str(MODEL))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"Error: --model {folder}: cannot be loaded (")
    assert result.stderr.count("\n") == 1
    (folder / "1_Pooling" / "config.json").write_text("garbage")
    result = run_cli("scan", str(data), "--model", str(folder), "--tokenizer", str(MODEL))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        f"Error: --model {folder}: 1_Pooling/config.json cannot be read as JSON ("
    )
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("device", ["tpu", "cuda:99"])
def test_a_device_that_cannot_be_used_is_one_line_about_the_device(tmp_path, device):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"query": "q", "pos": ["p"], "neg": ["n"]}) + "\n")
    result = run_cli("scan", str(data), "--model", str(MODEL), "--tokenizer", str(MODEL), "--device", device)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"Error: --device {device}: cannot be used here ("
    )  # not the model's fault
    assert result.stderr.count("\n") == 1


def test_score_options_need_a_model(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"query": "q", "pos": ["p"], "neg": ["n"]}) + "\n")
    result = run_cli("scan", str(data), "--add-scores")
    assert result.returncode == 2
    assert "--add-scores needs --model MODEL" in result.stderr


def test_out_of_memory_halves_the_batch_and_gives_the_same_embeddings(monkeypatch):
    from lenprof.score.encoder import ModelCard, TextEncoder

    texts = [f"passage {i} about {'many ' * (i % 9)}things" for i in range(40)]
    enc = TextEncoder(ModelCard.read(MODEL), device="cpu", token_budget=4096)
    want = enc.encode(texts)
    real = enc._pooled

    def small_only(ids, mask):  # a device that holds at most 8 rows
        if len(ids) > 8:
            raise MemoryError
        return real(ids, mask)

    monkeypatch.setattr(enc, "_pooled", small_only)
    got = enc.encode(texts)
    assert enc.halved >= 1 and enc.token_budget < 4096
    assert np.abs(got - want).max() < 1e-5


def test_scores_do_not_depend_on_workers_or_shards(tmp_path, planted):
    data, _, _ = planted
    one, out1 = scan(tmp_path / "a", data, "--drop-false-negatives", "--add-scores", "--workers", "1")
    two, out2 = scan(tmp_path / "b", data, "--drop-false-negatives", "--add-scores", "--workers", "2", "--shard-size", "0.01")  # fmt: skip
    assert one.returncode == two.returncode == 0, (one.stderr, two.stderr)
    (p1, c1, r1), (p2, c2, r2) = read(out1), read(out2)
    # batches cut differently round differently in float32: a score may move in its 7th digit
    scores = lambda rows: np.array([x for r in rows for x in r["pos_scores"] + r["neg_scores"]])  # noqa: E731
    assert np.abs(scores(c1) - scores(c2)).max() < 1e-5
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_scores")} for r in rows]  # noqa: E731
    assert (strip(c1), r1) == (strip(c2), r2)
    assert p1["samples"] == p2["samples"] and p1["fields"] == p2["fields"]
    f1, f2 = p1["scoring"].pop("forecast"), p2["scoring"].pop("forecast")
    assert p1["scoring"] == p2["scoring"] and f1["zero_share"] == f2["zero_share"]
    assert f1["loss"] == pytest.approx(f2["loss"], abs=1e-4)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))


@pytest.mark.slow
def test_flagembedding_distills_from_the_scores_written(tmp_path, docstrings, flagembedding_python):
    """FlagEmbedding 1.4.2 itself (its own venv) trains with --knowledge_distillation True on the
    cleaned rows --add-scores wrote: its loader takes pos_scores/neg_scores as they are."""
    data = tmp_path / "d.jsonl"
    data.write_text("".join(docstrings.read_text().splitlines(keepends=True)[:24]))
    clean = tmp_path / "clean" / "train.jsonl"
    result = run_cli(
        "scan", str(data), "--model", str(MODEL), "--tokenizer", str(MODEL), "--add-scores",
        "--clean-format", "flagembedding", "--clean-out", str(clean), "-q",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [json.loads(x) for x in clean.read_text().splitlines()]
    assert all(len(r["pos_scores"]) == len(r["pos"]) and len(r["neg_scores"]) == len(r["neg"]) for r in rows)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "run"
    proc = subprocess.run(
        [str(flagembedding_python), "-m", "torch.distributed.run", "--nproc_per_node", "1",
         "-m", "FlagEmbedding.finetune.embedder.encoder_only.base",
         "--model_name_or_path", str(MODEL), "--train_data", str(clean.parent), "--output_dir", str(out),
         "--query_max_len", "32", "--passage_max_len", "64", "--train_group_size", "4",
         "--per_device_train_batch_size", "2", "--learning_rate", "1e-5", "--temperature", "0.02",
         "--knowledge_distillation", "True", "--sentence_pooling_method", "mean", "--normalize_embeddings", "True",
         "--logging_steps", "1", "--max_steps", "3", "--save_steps", "3", "--dataloader_drop_last", "True",
         "--use_cpu", "True", "--report_to", "none", "--seed", "0"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert len(losses) == 3 and all(np.isfinite(losses))


@pytest.mark.slow
def test_the_forecast_is_what_a_real_run_logs(tmp_path, planted):
    """On rows that are mostly too easy, the share of the first 50 batches the forecast says
    will log 0.0 is within 10 points of the share a real ``lenprof train`` run logs, with the
    same batch size, group size and temperature."""
    data, rows, truth = planted
    easy = [r for r in rows if r["query"] in set(truth["too_easy"])]
    path = tmp_path / "easy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in easy))
    settings = ["--batch-size", "2", "--train-group-size", "4", "--temperature", "0.02"]
    result, out = scan(tmp_path, path, *settings)
    assert result.returncode == 0, result.stderr
    forecast = read(out)[0]["scoring"]["forecast"]
    assert forecast["batches"] == 50
    run = tmp_path / "run"
    trained = run_cli(
        "train", str(path), "--model", str(MODEL), "--output-dir", str(run), "--max-steps", "50",
        "--learning-rate", "1e-5", "--collapse-steps", "1000", "--profile", str(out / "p.json"), *settings,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    said = f"forecast: {out / 'p.json'} said {100 * forecast['zero_share']:.0f}% of the first 50 batches would log 0.0"
    assert said in trained.stdout and "as forecast: the rows are too easy for this model" in trained.stdout
    diagnosed = run_cli("diagnose", str(run), "--forecast", str(out / "p.json"))
    assert said in diagnosed.stdout and "not a collapse" in diagnosed.stdout, diagnosed.stdout
    losses = [
        r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r
    ]
    logged_zero = sum(1 for x in losses[:50] if round(x, 4) == 0) / len(losses[:50])
    assert 0.15 <= forecast["zero_share"] <= 0.85  # a share worth forecasting
    assert abs(forecast["zero_share"] - logged_zero) <= 0.10, (forecast["zero_share"], logged_zero)


def test_a_rescan_takes_every_embedding_from_the_disk_cache(tmp_path, docstrings):
    """The second scan of the same texts with the same model embeds nothing: same outputs, every
    embedding from the cache; another model (its pooling changed) has a cache of its own."""
    data = tmp_path / "d.jsonl"
    data.write_text("".join(docstrings.read_text().splitlines(keepends=True)[:30]))
    env = {
        **os.environ,
        "LENPROF_CACHE_DIR": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }

    def once(out: str, *extra: str):
        args = ["scan", str(data), "--model", str(MODEL), "--tokenizer", str(MODEL), "--add-scores"]
        args += ["--clean-out", str(tmp_path / out), *extra]
        done = subprocess.run(
            [sys.executable, "-m", "lenprof", *args], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stderr
        return done.stderr, (tmp_path / out).read_text()

    first, rows = once("a.jsonl")
    second, again = once("b.jsonl")
    third, _ = once("c.jsonl", "--no-embedding-cache")
    texts = len({t for r in map(json.loads, rows.splitlines()) for t in [r["query"], *r["pos"], *r["neg"]]})
    assert f"{texts} distinct texts embedded by {MODEL}\n" in first
    assert (
        f"{texts} distinct texts embedded by {MODEL}, {texts} of them from the cache of earlier scans"
        in second
    )
    assert "from the cache" not in third
    assert again == rows
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.sqlite"))) == 1


def test_without_a_tokenizer_the_lengths_are_the_models_own(tmp_path):
    """``scan --model M`` without --tokenizer measured lengths with the packaged MiniLM, whatever
    M was; now, as ``lenprof train`` does, with M's own tokenizer. Here M is a cased copy of
    MiniLM (its uncased vocabulary makes every capitalised word [UNK]): the lengths must be what
    transformers' AutoTokenizer of M gives, which the packaged tokenizer does not."""
    from transformers import AutoTokenizer

    folder = tmp_path / "cased"
    shutil.copytree(MODEL, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "do_lower_case": False}))
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["normalizer"]["lowercase"] = False
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    query = "WHAT IS THE CATALOGUE OF ZEBRAS"
    want = len(AutoTokenizer.from_pretrained(str(folder))(query)["input_ids"])
    packaged = len(AutoTokenizer.from_pretrained(str(MODEL))(query)["input_ids"])
    assert want != packaged  # else the test could not tell them apart
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"query": query, "pos": ["a cat"], "neg": ["a dog barks"]}) + "\n")
    out = tmp_path / "p.json"
    result = run_cli("scan", str(data), "--model", str(folder), "--out", str(out), "-q")
    assert result.returncode == 0, result.stderr
    assert "the default; set --tokenizer" not in result.stderr
    assert json.loads(out.read_text())["fields"]["query"]["max"] == want


def test_add_scores_on_a_sentence_transformers_layout_asks_for_flagembedding_rows(tmp_path):
    """sentence-transformers reads every column but a label as an input: pos_scores/neg_scores
    columns added to its rows would be texts to it. One line, asking for the FlagEmbedding
    format, which writes them where FlagEmbedding reads them."""
    data = tmp_path / "st.jsonl"
    data.write_text(
        json.dumps({"anchor": "what is a cat", "positive": "a cat is a pet", "negative": "rust"}) + "\n"
    )
    result, out = scan(tmp_path, data, "--add-scores")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "--clean-format flagembedding" in result.stderr
    result, out = scan(tmp_path, data, "--add-scores", "--clean-format", "flagembedding")
    assert result.returncode == 0, result.stderr
    _, cleaned, _ = read(out)
    assert set(cleaned[0]) == {"query", "pos", "neg", "pos_scores", "neg_scores"}


def test_a_row_without_negatives_is_not_too_easy_and_gets_an_empty_list(tmp_path):
    """A row kept without negatives (--min-neg 0) has a loss of 0 of its own by definition: it
    is not flagged too easy (was: always). Written beside rows that have negatives, it gets
    ``"neg": []``, not null (FlagEmbedding takes len() of it)."""
    data = tmp_path / "rows.jsonl"
    rows = [
        {"query": "what is a cat", "pos": ["a cat is a small domesticated mammal"]},
        {"query": "what is rust", "pos": ["rust is a systems programming language"], "neg": ["a cat"]},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result, out = scan(tmp_path, data, "--min-neg", "0", "--add-scores")
    assert result.returncode == 0, result.stderr
    profile, cleaned, _ = read(out)
    assert cleaned[0]["neg"] == [] and cleaned[1]["neg"] == ["a cat"]
    loss = lambda p, n: np.logaddexp.reduce(np.array([p, *n]) / 0.02) - p / 0.02  # noqa: E731
    easy = sum(
        1 for r in cleaned if r["neg"] and max(loss(p, r["neg_scores"]) for p in r["pos_scores"]) < 1e-3
    )
    assert profile["samples"]["warnings"].get("too_easy", 0) == easy


@pytest.mark.parametrize("value", ["1e-320", "0.00009"])
def test_a_temperature_too_small_to_divide_by_is_a_usage_error(tmp_path, value):
    """1/T overflowed to inf and the profile held NaN losses (invalid JSON)."""
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"query": "q", "pos": ["p"], "neg": ["n"]}) + "\n")
    result, _ = scan(tmp_path, data, "--temperature", value)
    assert result.returncode == 2 and "--temperature" in result.stderr, result.stderr
