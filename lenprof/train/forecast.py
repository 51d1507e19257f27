"""A run's first steps against the zero-loss forecast its scan made (``scan --model``, issue 25).

The scan drew the trainer's first batches from the base model's embeddings and said what share
would log a loss of 0.0 (``score/forecast.py``). A run that logs about that share from its first
step shows data too easy for the model, not a collapse: the remedy is harder negatives, not a
lower learning rate. A run that logs far more zeros than forecast collapsed as it trained.

    >>> from lenprof.train.health import Step
    >>> steps = [Step(i + 1, 0.0 if i % 2 else 0.8) for i in range(50)]
    >>> compare(steps, {"batches": 50, "zero_share": 0.46}, "p.json").split(":")[0]
    'forecast'
"""

from __future__ import annotations

import json

from lenprof.train.health import Step

MARGIN = 0.10  # points of share within which a run logs "as forecast"


def forecast_of(profile_path: str) -> dict | None:
    """The forecast in a saved scan profile, or None where the scan had no ``--model``."""
    with open(profile_path, encoding="utf-8") as fh:
        return json.load(fh).get("scoring", {}).get("forecast")


def compare(steps: list[Step], forecast: dict, source: str) -> str:
    """One line: the share of the run's first steps that logged 0.0 against the forecast's."""
    first = [s for s in steps if s.loss is not None][: forecast["batches"]]
    if not first:
        return f"forecast: {source} forecast its first batches, and the run logged no loss to compare"
    logged = sum(1 for s in first if round(s.loss, 4) == 0) / len(first)  # type: ignore[arg-type]
    expected = forecast["zero_share"]
    said = f"forecast: {source} said {100 * expected:.0f}% of the first {forecast['batches']} batches would log 0.0; the run logged {100 * logged:.0f}% of its first {len(first)} steps"  # fmt: skip
    if abs(logged - expected) <= MARGIN:
        why = "as forecast" + (": the rows are too easy for this model (mine harder negatives), not a collapse" if expected >= 0.1 else "")  # fmt: skip
    elif logged > expected:
        why = "more than forecast: the loss fell to zero while training (see the findings: a collapse is persistent)"
    else:
        why = "fewer than forecast: the run is harder than the scan's batches (other lengths, rows or model)"
    return f"{said}: {why}"


def for_run(profile_path: str | None, output_dir: str) -> str:
    """What ``lenprof train --profile`` adds to its summary: the run against its scan's forecast
    (nothing where the profile has none)."""
    forecast = forecast_of(profile_path) if profile_path else None
    if forecast is None:
        return ""
    from lenprof.train.diagnose import read_history

    steps, _ = read_history(output_dir)
    return compare(steps, forecast, profile_path) + "\n"  # type: ignore[arg-type]
