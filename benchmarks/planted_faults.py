"""A corpus with planted faults built from real retrieval rows (issue 25), and how many of them
``lenprof scan --model`` finds.

Real rows (benchmarks/make_retrieval.py: a docstring's summary against its body, negatives from
the same package) get two kinds of fault, each on its own share of rows:

- a **near-copy false negative**: the row's positive, lightly edited (a word dropped, one more
  appended), put among its negatives at a random place: another positive that says it is not;
- **unrelated negatives**: the row's negatives replaced by everyday sentences (cooking, weather,
  sport), so the model separates them at once: the row is too easy to teach anything.

    python benchmarks/planted_faults.py --rows 2000 --out /tmp/planted.jsonl
    lenprof scan /tmp/planted.jsonl --model MODEL --drop-false-negatives --clean-out c.jsonl --out p.json
    python benchmarks/planted_faults.py --rows 2000 --out /tmp/planted.jsonl --check c.jsonl p.json

The truth (which rows hold which fault, and the planted texts) is written beside the corpus as
``<out>.truth.json``; ``--check`` scores a scan's cleaned output and profile against it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sysconfig
from pathlib import Path

PACKAGES = ["email", "asyncio", "http", "xml", "unittest", "importlib", "multiprocessing", "concurrent",
            "logging", "json", "urllib", "collections", "tkinter", "idlelib", "ctypes", "sqlite3", "wsgiref",
            "xmlrpc", "curses", "dbm", "html", "venv"]  # fmt: skip


def real_rows(n: int, neg: int = 3, seed: int = 0, same_package: bool = False) -> list[dict]:
    """``n`` real retrieval rows from the standard library's docstrings (make_retrieval.py): a
    docstring's summary, its body, and ``neg`` other bodies, drawn from the whole corpus (random
    negatives, as most mined sets start) or, with ``same_package``, from its own package (hard
    ones: the model already finds about one in ten as relevant as the positive)."""
    here = Path(__file__).with_name("make_retrieval.py")
    spec = importlib.util.spec_from_file_location("make_retrieval", here)
    make_retrieval = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_retrieval)  # type: ignore[union-attr]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    rows = make_retrieval.rows(stdlib, n, neg, max_body=300, seed=seed, packages=PACKAGES)
    if same_package:
        return rows
    rng = random.Random(seed)
    bodies = [r["pos"][0] for r in rows]
    for i, r in enumerate(rows):
        r["neg"] = [bodies[j] for j in rng.sample(range(len(rows)), neg + 1) if j != i][:neg]
    return rows


# Text no docstring query is about: everyday sentences, the negatives of the "too easy" rows.
UNRELATED = [
    "Preheat the oven to 200 degrees and roast the vegetables for forty minutes.",
    "The home team scored twice in the second half and won the cup final.",
    "Heavy rain is expected along the coast tomorrow, with strong winds at night.",
    "She planted tomatoes, basil and marigolds along the sunny side of the garden.",
    "The museum's new wing shows paintings of harbours and fishing boats.",
    "Add a pinch of salt, stir in the butter, and let the sauce simmer gently.",
    "The train to the mountains leaves at seven and arrives just before noon.",
    "Our cat sleeps on the windowsill every afternoon, watching the birds outside.",
    "The choir rehearsed the old hymn until the harmonies sounded just right.",
    "Fresh strawberries are in season, and the market sells them by the basket.",
    "The hikers reached the summit at dawn and watched the fog lift from the valley.",
    "He repainted the fence white and fixed the loose boards by the gate.",
    "The bakery on the corner makes sourdough loaves and cinnamon rolls every morning.",
    "Tickets for the summer concert sold out within an hour of going on sale.",
    "The river froze over in January, and children skated on it all week.",
    "Grandmother's recipe calls for three eggs, a cup of sugar and lemon zest.",
    "The sailboat drifted slowly past the lighthouse as the sun went down.",
    "A herd of goats wandered across the road and stopped traffic for a while.",
    "The library's reading room is quiet, with tall windows and wooden desks.",
    "They celebrated the wedding with dancing, music and a long dinner outdoors.",
]


def near_copy(text: str, rng: random.Random) -> str:
    """``text`` lightly edited: one word dropped and one word appended."""
    words = text.split()
    if len(words) > 3:
        del words[rng.randrange(1, len(words))]
    return " ".join([*words, rng.choice(["also", "here", "too", "again"])])


def plant(rows: list[dict], share: float = 1 / 3, seed: int = 1) -> tuple[list[dict], dict]:
    """``rows`` with faults planted: a ``share`` of them get a near-copy false negative, another
    ``share`` unrelated negatives. Returns the rows and the truth: the planted texts by row, and
    the rows made too easy."""
    rng = random.Random(seed)
    out = [dict(r, neg=list(r["neg"])) for r in rows]
    order = list(range(len(out)))
    rng.shuffle(order)
    k = int(share * len(out))
    copies, unrelated = order[:k], order[k : 2 * k]
    truth: dict = {"false_negatives": {}, "too_easy": [out[i]["query"] for i in sorted(unrelated)]}
    for i in copies:
        text = near_copy(out[i]["pos"][0], rng)
        out[i]["neg"].insert(rng.randrange(len(out[i]["neg"]) + 1), text)
        truth["false_negatives"][out[i]["query"]] = text
    for i in unrelated:
        out[i]["neg"] = rng.sample(UNRELATED, len(rows[i]["neg"]))
    return out, truth


def check(truth: dict, cleaned: list[dict], profile: dict) -> dict:
    """What a scan with --drop-false-negatives found of the planted faults: the share of planted
    copies removed, the share of removed negatives that were planted, and the share of rows
    with unrelated negatives warned too_easy (from the cleaned rows, in order: none is dropped)."""
    kept = {row["query"]: row for row in cleaned}
    planted = truth["false_negatives"]  # by query
    planted_removed = sum(1 for q, text in planted.items() if q in kept and text not in kept[q]["neg"])
    planted_removed += sum(1 for q in planted if q not in kept)  # dropped: left with too few
    removed = profile["samples"]["repaired"].get("false_negative_removed", 0)
    easy = profile["samples"]["warnings"].get("too_easy", 0)
    return {
        "planted copies removed": planted_removed / len(planted),
        "removed that were planted": planted_removed / removed if removed else 1.0,
        "negatives removed": removed,
        "too_easy rows": easy,
        "unrelated rows": len(truth["too_easy"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--check", nargs=2, metavar=("CLEANED", "PROFILE"))
    ap.add_argument("--same-package", action="store_true", help="hard negatives: from each row's own package")
    args = ap.parse_args()
    truth_path = Path(args.out + ".truth.json")
    if args.check:
        cleaned = [json.loads(line) for line in open(args.check[0], encoding="utf-8")]
        print(
            json.dumps(
                check(
                    json.loads(truth_path.read_text()), cleaned, json.loads(Path(args.check[1]).read_text())
                ),
                indent=1,
            )
        )
        return
    rows, truth = plant(real_rows(args.rows, same_package=args.same_package))
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    truth_path.write_text(json.dumps(truth), encoding="utf-8")
    print(
        f"{args.out}: {len(rows)} rows, {len(truth['false_negatives'])} near-copy false negatives, {len(truth['too_easy'])} rows with unrelated negatives"
    )


if __name__ == "__main__":
    main()
