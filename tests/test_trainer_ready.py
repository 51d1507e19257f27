"""Cleaned data shaped as the trainers load it: a mirrored folder, one key set per file, FlagEmbedding's
own format, and the checks of knowledge-distillation scores and prompts. FlagEmbedding's real loader
and ``datasets.load_dataset`` are the oracles."""

from __future__ import annotations

import json
import math
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES

from lenprof import ScanOptions, scan
from lenprof.cli import main
from lenprof.errors import OutputError

ROWS = [json.loads(line) for line in (EXAMPLES / "msmarco.jsonl").read_text().splitlines()]


def base_rows() -> list[dict]:
    return [{k: r[k] for k in ("query", "pos", "neg", "pos_scores", "neg_scores")} for r in ROWS]


def write_jsonl(path, rows) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def load_json(path) -> list[dict]:
    import datasets

    return datasets.load_dataset("json", data_files=str(path), split="train").to_list()


@pytest.fixture
def tasks(tmp_path):
    """A folder of tasks as FlagEmbedding trains on: keys differ between files, and a prompt is
    on some rows of one file only."""
    rows = base_rows()
    a = [dict(r, prompt="Represent this question: ") if i % 2 == 0 else r for i, r in enumerate(rows[:6])]
    b = [dict(r, type="normal") for r in rows[6:]]
    write_jsonl(tmp_path / "data" / "a.jsonl", a)
    write_jsonl(tmp_path / "data" / "more" / "b.jsonl", b)
    return tmp_path / "data", a, b


def test_a_mirrored_folder_holds_one_cleaned_file_per_input(tok, tasks, tmp_path):
    data, a, b = tasks
    out = tmp_path / "clean"
    profile = scan(str(data), tokenizer=tok, clean_out=f"{out}/")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["a.jsonl", "more/b.jsonl"]  # fmt: skip
    got_a, got_b = load_json(out / "a.jsonl"), load_json(out / "more" / "b.jsonl")
    # one key set per file, and across files (FlagEmbedding concatenates them): the rows without a
    # prompt carry "" (no instruction was given), never a null, which FlagEmbedding trains as "None"
    assert got_a == [dict(r, prompt=r.get("prompt", "")) for r in a]
    assert got_b == [dict(r, prompt="") for r in b]
    # FlagEmbedding concatenates its files: b's rows lack a prompt as much as a's odd rows
    assert profile.samples.warnings == {"partial_prompt": 3 + 4}
    assert [(e.source, e.line) for e in profile.examples["partial_prompt"]] == [
        *((str(data / "a.jsonl"), n) for n in (2, 4, 6)),
        *((str(data / "more" / "b.jsonl"), n) for n in (1, 2)),
    ]
    assert profile.run.filled == {f"{out}/a.jsonl": {"prompt": 3}, f"{out}/more/b.jsonl": {"prompt": 4}}


def test_a_mirrored_parquet_input_stays_parquet_with_one_schema(tok, tmp_path):
    import datasets

    rows = [dict(r, type=None) for r in base_rows()]
    rows[1]["type"] = "normal"  # on one row only: a column of nulls elsewhere
    rows[2]["neg"] = rows[2]["neg"] + [rows[2]["pos"][0]]  # a repair: pos_in_neg
    rows[2]["neg_scores"] = rows[2]["neg_scores"] + [0.99]
    (tmp_path / "in").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in" / "train-00000.parquet")
    out = tmp_path / "out"
    profile = scan(str(tmp_path / "in"), tokenizer=tok, clean_out=f"{out}/")
    assert profile.samples.repaired == {"pos_in_neg": 1}
    got = datasets.load_dataset(
        "parquet", data_files=str(out / "train-00000.parquet"), split="train"
    ).to_list()
    want = [dict(r, type=None) for r in base_rows()]
    want[1]["type"] = "normal"
    assert got == want  # the repaired row is back to its original negatives and scores


def test_the_merged_file_loads_although_its_inputs_have_different_keys(tok, tasks, tmp_path):
    data, a, b = tasks
    merged = tmp_path / "merged.jsonl"
    scan(str(data), tokenizer=tok, clean_out=str(merged))
    rows = load_json(merged)  # a DatasetGenerationCastError before: b has 'type', a has 'prompt'
    assert [r["query"] for r in rows] == [r["query"] for r in a + b]
    assert {frozenset(r) for r in rows} == {frozenset(["query", "pos", "neg", "pos_scores", "neg_scores", "prompt", "type"])}  # fmt: skip
    # a row without a type is a "normal" one: FlagEmbedding's same-dataset mode crashes on a null type
    assert [r["type"] for r in rows] == ["normal"] * len(rows)


@pytest.mark.slow
def test_flagembedding_reads_the_mirrored_folder_as_lenprof_measured_it(
    tok, tasks, tmp_path, flagembedding_python
):
    """FlagEmbedding's own loader (its venv, transformers < 5): with the scan's instruction, the
    rows without a prompt, in a's file and in b's (FlagEmbedding concatenates them, so b's rows
    would get None too), get the instruction, not "None" + query; same-dataset mode loads each file."""
    data, a, b = tasks
    out = tmp_path / "clean"
    instruction = "Represent this sentence for searching relevant passages: "
    scan(str(data), ScanOptions(query_instruction=instruction), tokenizer=tok, clean_out=f"{out}/")
    script = (
        "import json, sys\n"
        "from FlagEmbedding.abc.finetune.embedder import AbsEmbedderDataArguments as A, AbsEmbedderTrainDataset as D, AbsEmbedderSameDatasetTrainDataset as S\n"
        "args = A(train_data=sys.argv[1:3], train_group_size=2, query_instruction_for_retrieval=sys.argv[3], knowledge_distillation=True, same_dataset_within_batch=True)\n"
        "ds = D(args, tokenizer=None)\n"
        "items = [ds[i] for i in range(len(ds))]\n"
        "same = S(args, default_batch_size=2, seed=0, tokenizer=None, process_index=0, num_processes=1)\n"
        "print(json.dumps({'queries': [q for q, _, _ in items], 'scores': [s for _, _, s in items], 'batches': len(same.batch_datas)}))\n"
    )  # fmt: skip
    proc = subprocess.run(
        [str(flagembedding_python), "-c", script, str(out), str(out / "more"), instruction],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.splitlines()[-1])
    want = [r.get("prompt", instruction) + r["query"] for r in a] + [instruction + r["query"] for r in b]
    assert sorted(got["queries"]) == sorted(want)
    assert all(len(s) == 2 for s in got["scores"])  # knowledge distillation found both score lists
    assert got["batches"] == 3 + 2  # per file: 6 rows -> 3 batches of 2, 4 rows -> 2


def test_sentence_transformers_rows_in_flagembeddings_format(tok, tmp_path):
    st = [{"anchor": r["query"], "positive": r["pos"][0], "negative_1": r["neg"][0], "negative_2": r["neg"][1]} for r in ROWS]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(st), tmp_path / "train.parquet")
    out = tmp_path / "fe"
    scan(str(tmp_path / "train.parquet"), tokenizer=tok, clean_out=f"{out}/", clean_format="flagembedding")
    assert load_json(out / "train.jsonl") == [
        {"query": r["anchor"], "pos": [r["positive"]], "neg": [r["negative_1"], r["negative_2"]]} for r in st
    ]
    with pytest.raises(OutputError, match="FlagEmbedding reads only .json and .jsonl"):
        scan(str(tmp_path / "train.parquet"), tokenizer=tok, clean_out=str(tmp_path / "x.parquet"), clean_format="flagembedding")  # fmt: skip


def test_flagembedding_format_keeps_scores_aligned_with_repairs(tok, tmp_path):
    row = {"query": "q", "pos": ["p"], "neg": ["n1", "p", "n2"], "pos_scores": [0.9], "neg_scores": [0.1, 0.8, 0.2], "extra": 1}  # fmt: skip
    path = write_jsonl(tmp_path / "kd.jsonl", [row])
    out = tmp_path / "out.jsonl"
    scan(path, tokenizer=tok, clean_out=str(out), clean_format="flagembedding")
    assert load_json(out) == [{"query": "q", "pos": ["p"], "neg": ["n1", "n2"], "pos_scores": [0.9], "neg_scores": [0.1, 0.2]}]  # fmt: skip


@pytest.mark.parametrize(
    ("scores", "detail"),
    [
        ({"pos_scores": [0.9, 0.1], "neg_scores": [0.1, 0.2]}, "'pos_scores' has 2 scores for 1 positives"),
        ({"pos_scores": [0.9], "neg_scores": [0.1]}, "'neg_scores' has 1 scores for 2 negatives"),
        ({"pos_scores": [0.9], "neg_scores": [0.1, "high"]}, "'neg_scores'[1] must be a number, got str"),
        ({"pos_scores": [True], "neg_scores": [0.1, 0.2]}, "'pos_scores'[0] must be a number, got bool"),
        ({"pos_scores": 0.9, "neg_scores": [0.1, 0.2]}, "'pos_scores' must be a list of numbers, got float"),
    ],
)
def test_scores_that_cannot_serve_distillation_drop_the_row(tok, tmp_path, scores, detail):
    good = {"query": "q0", "pos": ["p"], "neg": ["n1", "n2"], "pos_scores": [0.5], "neg_scores": [0.1, 0.2]}
    path = write_jsonl(
        tmp_path / "kd.jsonl", [good, {"query": "q1", "pos": ["p"], "neg": ["n1", "n2"], **scores}]
    )
    rejects = tmp_path / "rejects.jsonl"
    profile = scan(path, tokenizer=tok, rejects_out=str(rejects))
    assert (profile.samples.kept, profile.samples.dropped) == (1, {"bad_scores": 1})
    record = json.loads(rejects.read_text())
    assert (record["line"], record["reason"], record["detail"]) == (2, "bad_scores", detail)


def test_non_finite_scores_in_parquet_drop_the_row(tok, tmp_path):
    rows = [
        {"query": "q0", "pos": ["p"], "neg": ["n"], "pos_scores": [0.5], "neg_scores": [0.1]},
        {"query": "q1", "pos": ["p"], "neg": ["n"], "pos_scores": [math.nan], "neg_scores": [0.1]},
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "kd.parquet")
    profile = scan(str(tmp_path / "kd.parquet"), tokenizer=tok)
    assert profile.samples.dropped == {"bad_scores": 1}
    assert profile.examples["bad_scores"][0].detail == "'pos_scores'[0] is nan, not a finite number"


def test_scores_on_some_rows_only_are_a_warning(tok, tmp_path):
    rows = base_rows()
    for r in rows[3:5]:
        del r["neg_scores"]
    profile = scan(write_jsonl(tmp_path / "kd.jsonl", rows), tokenizer=tok)
    assert profile.samples.warnings == {"partial_scores": 2}
    assert [e.line for e in profile.examples["partial_scores"]] == [4, 5]


def test_the_cli_says_what_it_filled_and_what_it_did_not_write(tmp_path):
    write_jsonl(
        tmp_path / "in" / "a.jsonl",
        [dict(r, prompt="P: ") if i else r for i, r in enumerate(base_rows()[:3])],
    )
    write_jsonl(tmp_path / "in" / "b.jsonl", [{"query": "q", "pos": ["q"], "neg": ["n"]}])  # query equals pos
    result = CliRunner().invoke(main, ["scan", str(tmp_path / "in"), "--clean-out", f"{tmp_path}/out/", "--query-instruction", "Q: "])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert f"lenprof: {tmp_path}/out/a.jsonl: every row has the same keys, written with the --query-instruction as 'prompt' on 1 rows\n" in result.stderr  # fmt: skip
    assert f"lenprof: {tmp_path}/out/b.jsonl: not written, as no row of its input was kept\n" in result.stderr
    assert load_json(tmp_path / "out" / "a.jsonl")[0]["prompt"] == "Q: "
    assert not (tmp_path / "out" / "b.jsonl").exists()


def test_length_buckets_hold_a_prompt_on_every_row(tmp_path):
    """--split-by-length files are training files too: one key set, and no null prompt."""
    rows = [dict(r, prompt="P: ") if i < 4 else dict(r, prompt=None) if i < 6 else r for i, r in enumerate(base_rows())]  # fmt: skip
    write_jsonl(tmp_path / "in.jsonl", rows)
    args = ["scan", str(tmp_path / "in.jsonl"), "--split-by-length", "150", "--split-dir", str(tmp_path / "b"), "-q"]  # fmt: skip
    assert CliRunner().invoke(main, [*args, "--query-instruction", "Q: "]).exit_code == 0
    written = {p.name: load_json(p) for p in sorted((tmp_path / "b").iterdir())}
    assert len(written) == 2  # rows on both sides of 150 tokens
    prompts = {r["query"]: r["prompt"] for got in written.values() for r in got}
    assert prompts == {r["query"]: "P: " if i < 4 else "Q: " for i, r in enumerate(rows)}


def test_a_mirrored_parquet_file_gets_the_prompt_column_it_lacked(tok, tmp_path):
    """One Parquet input with prompts, one without and one with a null prompt column: each
    mirrored file holds the prompt column, filled, so datasets concatenates them without None."""
    import datasets

    rows = base_rows()
    (tmp_path / "in").mkdir()
    pq.write_table(
        pa.Table.from_pylist([dict(r, prompt="P: ") for r in rows[:4]]), tmp_path / "in" / "a.parquet"
    )
    pq.write_table(pa.Table.from_pylist(rows[4:7]), tmp_path / "in" / "b.parquet")
    pq.write_table(
        pa.Table.from_pylist([dict(r, prompt=None) for r in rows[7:]]), tmp_path / "in" / "c.parquet"
    )
    out = tmp_path / "out"
    profile = scan(
        str(tmp_path / "in"), ScanOptions(query_instruction="Q: "), tokenizer=tok, clean_out=f"{out}/"
    )
    assert profile.run.filled == {f"{out}/b.parquet": {"prompt": 3}, f"{out}/c.parquet": {"prompt": 3}}
    got = datasets.load_dataset("parquet", data_files=sorted(str(p) for p in out.iterdir()), split="train")
    assert got["prompt"] == ["P: "] * 4 + ["Q: "] * 6


def test_a_mirrored_folder_holding_other_data_files_is_refused(tmp_path):
    """An older run's file (another split's) left in the folder would be trained on too."""
    write_jsonl(tmp_path / "in" / "train.jsonl", base_rows())
    out = tmp_path / "clean"
    write_jsonl(out / "test-00000-of-00001.jsonl", base_rows()[:2])
    args = ["scan", str(tmp_path / "in"), "--clean-out", f"{out}/", "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {out}/: already holds data files this run does not write (test-00000-of-00001.jsonl); "
        "a trainer given the folder would train on them too: choose an empty or new folder, or remove them\n"
    )
    (out / "test-00000-of-00001.jsonl").unlink()
    assert CliRunner().invoke(main, args).exit_code == 0
    assert CliRunner().invoke(main, args).exit_code == 0  # its own files, written again
    twice = CliRunner().invoke(main, [*args, "--split-by-length", "150", "--split-dir", f"{out}/b"])
    assert twice.exit_code == 2 and "would train on every row twice" in twice.stderr


def test_the_scan_says_which_mirrored_files_flagembedding_would_skip(tmp_path):
    import gzip

    write_jsonl(tmp_path / "in" / "a.jsonl", base_rows()[:5])
    with gzip.open(tmp_path / "in" / "b.jsonl.gz", "wt") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in base_rows()[5:]))
    out = f"{tmp_path}/clean/"
    result = CliRunner().invoke(main, ["scan", str(tmp_path / "in"), "--clean-out", out, "--format", "args"])
    assert result.exit_code == 0
    assert (
        f"lenprof: {out}: 1 cleaned files (b.jsonl.gz) are files FlagEmbedding's --train_data skips, as it "
        "reads .json and .jsonl only: --clean-format flagembedding writes .jsonl\n"
    ) in result.stderr
    fe = CliRunner().invoke(main, ["scan", str(tmp_path / "in"), "--clean-out", f"{tmp_path}/fe/", "--clean-format", "flagembedding", "--format", "args"])  # fmt: skip
    assert fe.exit_code == 0 and "skips" not in fe.stderr
