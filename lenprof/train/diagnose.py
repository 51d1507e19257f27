"""``lenprof diagnose``: name what a finished run's loss history shows.

Reads a Hugging Face ``trainer_state.json`` (what FlagEmbedding's and sentence-transformers'
output folders hold) or lenprof's ``metrics.jsonl``. What a run's own watchdog recorded
(``train_report.json``'s events, else ``metrics.jsonl``'s) comes first: a run that collapsed,
recovered or stopped is never called healthy because its loss fell afterwards. The Trainer rounds logged losses to 4
decimals, so there a 0.0 with a finite, non-zero gradient norm is a rounded easy batch, not a
collapse. Files are checked as they are read: a damaged one is a :class:`HistoryError` naming
the file, the entry or line, and what is wrong, never a traceback. The run's setup (candidates
per query, precision) comes from the flags, else from the files beside the history (runinfo.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from lenprof.io.jsontext import loads
from lenprof.train.health import Event, Step, candidates_per_query, finite
from lenprof.train.runinfo import recorded_events, run_info
from lenprof.train.trend import trend

ORDER = (
    "watchdog",
    "exact_zero",
    "hidden_nan",
    "non_finite",
    "persistent_zero",
    "uniform_collapse",
    "rounding_zero",
    "diverging",
    "stalled",
    "too_short",
    "healthy",
)
FINE = {"healthy", "rounding_zero", "too_short"}  # exit 0; every other finding exits 1


class HistoryError(ValueError):
    """A loss history that cannot be read. Exit code 2."""


def _number(value: object, where: str) -> float | None:
    """A logged number: null, a JSON number, or a string such as "NaN" that strict writers use."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise HistoryError(f"{where} must be a number, got {type(value).__name__}")
    try:
        return float(value)
    except (ValueError, OverflowError) as exc:
        raise HistoryError(f"{where} must be a number, got {value!r}") from exc


def _step(entry: object, where: str, loss_key: str, lr_key: str) -> Step | None:
    if not isinstance(entry, dict):
        raise HistoryError(f"{where} must be an object, got {type(entry).__name__}")
    if loss_key not in entry:
        return None  # an evaluation or summary entry
    step = entry.get("step")
    if isinstance(step, bool) or not isinstance(step, int):
        raise HistoryError(f"{where}.step must be a whole number, got {json.dumps(step)}")
    return Step(
        step,
        _number(entry[loss_key], f"{where}.{loss_key}"),
        _number(entry.get("grad_norm"), f"{where}.grad_norm"),
        _number(entry.get(lr_key), f"{where}.{lr_key}"),
    )


def find_history(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        # lenprof's own full-precision log first (the callback writes it beside the Trainer's)
        found = sorted(p.glob("metrics.jsonl")) or sorted(
            p.glob("**/trainer_state.json"), key=lambda f: f.stat().st_mtime
        )
        if not found:
            raise HistoryError(f"{p}: no trainer_state.json or metrics.jsonl inside")
        p = found[-1]
    return p


def read_history(path: str | Path) -> tuple[list[Step], str | None]:
    """The logged steps, and a note when the file's last line was cut short (a run still
    writing, or killed): that line is left out, every complete one is read."""
    p = find_history(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HistoryError(f"{p}: cannot be read ({exc})") from exc
    if p.suffix == ".jsonl":
        return _read_metrics(p, text)
    try:
        state = loads(text)
    except ValueError as exc:
        raise HistoryError(f"{p}: not JSON ({exc})") from exc
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        raise HistoryError(f"{p}: not a trainer_state.json (no log_history list)")
    steps = [
        _step(e, f"{p}: log_history[{i}]", "loss", "learning_rate")
        for i, e in enumerate(state["log_history"])
    ]
    return [s for s in steps if s is not None], None


def _read_metrics(p: Path, text: str) -> tuple[list[Step], str | None]:
    lines = text.split("\n")
    note = None
    steps = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = loads(line)
        except ValueError as exc:
            if number == len(lines):  # no newline after it: cut mid-write
                note = f"{p}: line {number} is cut short and was left out"
                break
            raise HistoryError(f"{p}: line {number} is not JSON ({exc})") from exc
        step = _step(row, f"{p}: line {number}", "loss", "lr")
        if step is not None:
            steps.append(step)
    return steps, note


def infer_candidates(steps: list[Step], batch_size: int, plateau_tol: float = 0.03) -> int | None:
    """The candidates per query of a run whose per-device batch size is known but whose group
    size is not (FlagEmbedding does not save it): ``batch_size * g`` for the ``g`` whose ln the
    later half of the losses sits at, if it sits at one. In-batch negatives are assumed, as
    FlagEmbedding uses them by default.

    >>> import math
    >>> infer_candidates([Step(i, math.log(64) + 0.01 * (-1) ** i) for i in range(10)], 8)
    64
    """
    tail = sorted(s.loss for s in steps[len(steps) // 2 :] if finite(s.loss))  # type: ignore[type-var]
    if len(tail) < 3:
        return None
    median = tail[len(tail) // 2]
    g = max(1, round(math.exp(median) / batch_size)) if median < 20 else None
    if g is None:
        return None
    k = batch_size * g
    return k if k > 1 and abs(median - math.log(k)) <= plateau_tol * math.log(k) else None


def diagnose(
    steps: list[Step],
    candidates: int | None = None,
    run: int = 5,
    plateau_tol: float = 0.03,
    precision: str | None = None,
    lr: float | None = None,
    recorded: Event | None = None,
) -> list[Event]:
    """Name what a finished run's loss history shows (see ``health.py`` for the kinds).

    A finite logged loss over a NaN/inf gradient norm is ``hidden_nan`` (the Trainer's
    ``logging_nan_inf_filter`` logs the average so far in a NaN step's place, 0.0 or not). A
    logged loss of exactly 0.0 is judged by its gradient norm: 0 -> ``exact_zero`` (nothing
    learns); finite and non-zero -> a rounded easy batch (``rounding_zero``), unless ``run`` or
    more such steps come in a row (``persistent_zero``). When nothing else is found, the trend of the finite losses decides (``trend.py``):
    ``healthy``, ``stalled``, ``diverging``, or ``too_short`` to tell. ``precision`` (fp16,
    bf16, no) tunes the NaN advice; ``lr``, the run's peak learning rate, puts numbers in it.
    ``recorded``: what the run's own watchdog did (:func:`watchdog_finding`); it comes first, and
    the trend cannot then say ``healthy``.
    """
    findings: dict[str, Event] = {"watchdog": recorded} if recorded else {}
    logged = [s.step for s in steps]

    def add(kind: str, step: int) -> None:
        findings.setdefault(kind, Event(kind, logged=logged, precision=precision, lr=lr)).steps.append(step)

    streak: list[Step] = []  # consecutive logged zeros with a finite, non-zero (or no) gradient norm

    def close_streak() -> None:
        for z in streak:
            add("persistent_zero" if len(streak) >= run else "rounding_zero", z.step)
        streak.clear()

    for s in steps:
        if s.loss is None or not math.isfinite(s.loss):
            close_streak()
            add("non_finite", s.step)
        elif s.grad_norm is not None and not math.isfinite(s.grad_norm):
            if s.loss != 0.0:  # a logged non-zero ends a run of logged zeros, as below
                close_streak()
            add("hidden_nan", s.step)
        elif s.loss == 0.0 and s.grad_norm == 0.0:
            close_streak()
            add("exact_zero", s.step)
        elif s.loss == 0.0:
            streak.append(s)
        else:
            close_streak()
    close_streak()
    if candidates and candidates > 1:
        ln_k = math.log(candidates)
        flat = [s for s in steps if finite(s.loss) and abs(s.loss - ln_k) <= plateau_tol * ln_k]  # type: ignore[arg-type]
        if len(flat) >= run and len(flat) >= len(steps) // 2:
            for s in flat:
                add("uniform_collapse", s.step)
    if set(findings) <= {"rounding_zero", "watchdog"}:
        judged = [s for s in steps if finite(s.loss)]
        t = trend([s.loss for s in judged])  # type: ignore[misc]
        detail = t.describe()
        if t.verdict == "stalled" and candidates and candidates > 1:
            detail += "; " + _plateau(t.last, candidates, plateau_tol)  # type: ignore[arg-type]
        span = [s.step for s in judged]
        if not (recorded and t.verdict == "healthy"):  # a fall after a restore is no health
            findings[t.verdict] = Event(t.verdict, span, logged, precision, lr, detail)
    return [findings[k] for k in ORDER if k in findings]


ALARMS = ("persistent_zero", "uniform_collapse", "non_finite")  # what the live watchdog raises


def watchdog_finding(events: list[dict], stopped: str | None, weights: str | None, source: str,
                     logged: list[int]) -> Event | None:  # fmt: skip
    """One finding for what a run's own watchdog did, from its events (``train_report.json``'s,
    or ``metrics.jsonl``'s per step): its alarms with their steps, its recoveries, its stop.

    >>> e = watchdog_finding([{"step": 6, "kind": "uniform_collapse"}, {"step": 6, "kind": "recovered"},
    ...                       {"step": 11, "kind": "uniform_collapse"}], None, "trained", "run/train_report.json", [])
    >>> e.steps, e.detail
    ([6, 11], 'recorded in run/train_report.json: uniform_collapse at steps 6, 11; 1 recovery (restored the snapshot, cut the learning rate); it saved: trained')
    """
    alarms: dict[str, list[int]] = {}
    for e in events:
        if e.get("kind") in ALARMS and isinstance(e.get("step"), int):
            alarms.setdefault(e["kind"], []).append(e["step"])
    recoveries = sum(1 for e in events if e.get("kind") == "recovered")
    stops = [e.get("step") for e in events if e.get("kind") == "stopped"]
    if not alarms and not recoveries and not stopped and not stops:
        return None
    parts = [
        f"{k} at step{'s' if len(v) > 1 else ''} {Event(k, v, logged).ranges()}" for k, v in alarms.items()
    ]
    if recoveries:
        parts.append(
            f"{recoveries} recover{'y' if recoveries == 1 else 'ies'} (restored the snapshot, cut the learning rate)"
        )
    if stopped or stops:
        at = f" at step {stops[-1]}" if stops and isinstance(stops[-1], int) else ""
        parts.append(f"stopped{at}: {stopped}" if stopped else f"stopped{at}")
    if weights:
        parts.append(f"it saved: {weights}")
    steps = sorted({s for v in alarms.values() for s in v} | {s for s in stops if isinstance(s, int)})
    return Event("watchdog", steps, logged, detail=f"recorded in {source}: " + "; ".join(parts))


def _plateau(loss: float, candidates: int, tol: float) -> str:
    """Where a stalled loss sits against ln(candidates), where a uniform scorer sits.

    >>> _plateau(1.386, 16, 0.03)
    'not at ln(16) = 2.773, where every candidate would score the same: the model tells them apart, but stopped learning'
    """
    ln_k = math.log(candidates)
    if abs(loss - ln_k) <= tol * ln_k:
        return (f"it sits at ln({candidates}) = {ln_k:.3f}, where every candidate scores the same: the "
                "embeddings do not tell them apart (collapse, or a learning rate too low to move them)")  # fmt: skip
    return (f"not at ln({candidates}) = {ln_k:.3f}, where every candidate would score the same: the model "
            "tells them apart, but stopped learning")  # fmt: skip


@dataclass(frozen=True)
class Diagnosis:
    path: str
    steps: list[Step]
    findings: list[Event]
    note: str | None = None
    setup: str | None = None  # where the candidates per query came from
    forecast: str | None = None  # the first steps against scan --model's forecast (``forecast.py``)

    @property
    def trouble(self) -> bool:
        return any(f.kind not in FINE for f in self.findings)

    def to_dict(self) -> dict:
        d = {"path": self.path, "steps": len(self.steps), "findings": [f.to_dict() for f in self.findings]}
        extra = {"setup": self.setup, "forecast": self.forecast}
        return {**d, **{k: v for k, v in extra.items() if v}}

    def render(self) -> str:
        span = f" (steps {self.steps[0].step}-{self.steps[-1].step})" if self.steps else ""
        lines = [f"lenprof diagnose: {self.path}, {len(self.steps)} logged steps{span}"]
        for f in self.findings:
            what = "recorded" if f.kind == "watchdog" else "logged"
            lines.append(f"{f.kind:<17} steps {f.ranges()} ({len(f.steps)} {what})" if f.steps else f.kind)
            lines += [f"{'':<17} {text}" for text in (f.detail, f.advice) if text]
        lines += [line for line in (self.setup and f"setup: {self.setup}", self.forecast) if line]
        return "\n".join(lines) + "\n"


def diagnose_path(
    path: str,
    candidates: int | None = None,
    batch_size: int | None = None,
    group_size: int | None = None,
    in_batch: bool = True,
    world_size: int = 1,
) -> Diagnosis:
    """Read a run's history and judge it. ``candidates`` may come from batch and group size,
    else from the run's own files (see runinfo.py)."""
    steps, note = read_history(path)
    history = find_history(path)
    if not steps:
        raise HistoryError(
            f"{history}: no logged loss in it, so nothing to diagnose; the run logs one every "
            "logging_steps (a run shorter than that logs none): wait for it, or lower logging_steps"
        )
    info = run_info(history)
    setup = None
    if candidates is None and group_size:
        batch_size = batch_size or info.batch_size or 1
        candidates = candidates_per_query(batch_size, group_size, in_batch, world_size)
    elif candidates is None and info.candidates:
        candidates, setup = info.candidates, f"{info.candidates} candidates per query (from {info.source})"
    elif candidates is None and (batch_size or info.batch_size):
        batch = batch_size or info.batch_size
        candidates = infer_candidates(steps, batch)  # type: ignore[arg-type]
        if candidates:
            setup = (f"{candidates} candidates per query = batch size {batch} x group size {candidates // batch}, "
                     f"inferred from the loss plateau (batch size from {info.source or 'the flags'}); "
                     "pass --group-size to state it")  # fmt: skip
    if candidates == 1:
        return Diagnosis(path, steps, [Event("single_candidate", [s.step for s in steps])], note, setup)
    rates = [s.lr for s in steps if finite(s.lr) and s.lr > 0]  # type: ignore[operator]
    lr = info.learning_rate or (max(rates) if rates else None)  # type: ignore[type-var]
    events, source = recorded_events(history, info)
    recorded = watchdog_finding(events, info.stopped, info.weights, source, [s.step for s in steps])
    if recorded is not None:
        recorded.precision, recorded.lr = info.precision, lr
    found = diagnose(steps, candidates, precision=info.precision, lr=lr, recorded=recorded)
    return Diagnosis(path, steps, found, note, setup)
