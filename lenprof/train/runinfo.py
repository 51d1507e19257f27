"""What a run's output folder says about its setup, for ``lenprof diagnose``.

A loss plateau means collapse only at ln(candidates), and NaN advice depends on the precision,
so diagnose looks for both beside the loss history:

- lenprof's ``train_report.json`` (``lenprof train`` and the Trainer callback write one):
  ``candidates_per_query``, ``precision``, (``lenprof train``'s) ``config.learning_rate``, and
  what the run's own watchdog did: its ``events``, and whether it ``stopped`` and with which
  ``weights``;
- a Hugging Face ``trainer_state.json``: ``train_batch_size`` (per device, times GPUs in one
  process);
- ``training_args.bin``, the pickled ``TrainingArguments`` that the Trainer (and so
  FlagEmbedding) saves: ``per_device_train_batch_size``, ``fp16``/``bf16``, ``learning_rate``,
  ``negatives_cross_device``. It is read by an unpickler that builds inert stand-ins for every
  class, so nothing in the file runs and neither torch nor FlagEmbedding is needed.

The group size is not saved by FlagEmbedding (it is a data argument); ``diagnose`` infers it
from a plateau only where the batch size is known (see ``diagnose.infer_candidates``).
"""

from __future__ import annotations

import builtins
import copyreg
import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lenprof.io.jsontext import loads


@dataclass(frozen=True)
class RunInfo:
    candidates: int | None = None
    batch_size: int | None = None  # per device
    world_size: int | None = None
    precision: str | None = None  # fp16, bf16, no (fp32); None: unknown
    learning_rate: float | None = None  # the peak rate the run was set to
    source: str | None = None  # the file these came from, for the report
    events: tuple[dict, ...] = ()  # the watchdog's own record: {"step", "kind", ...}
    stopped: str | None = None  # why the run stopped, if it did
    weights: str | None = None  # what it saved: trained, base, from before step N


class _Inert:
    """Stands in for any pickled class: keeps its state, runs nothing."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)


class _InertUnpickler(pickle.Unpickler):
    _SAFE = {
        ("copyreg", "__newobj__"): copyreg.__newobj__,
        ("copyreg", "_reconstructor"): copyreg._reconstructor,
    }
    _BUILTINS = {
        "set",
        "frozenset",
        "dict",
        "list",
        "tuple",
        "object",
        "int",
        "float",
        "str",
        "bytes",
        "bool",
    }

    def find_class(self, module, name):
        if (module, name) in self._SAFE:
            return self._SAFE[(module, name)]
        if module == "builtins" and name in self._BUILTINS:
            return getattr(builtins, name)
        return type(name, (_Inert,), {})

    def persistent_load(self, pid):  # torch's tensor storages: not needed
        return None


def read_training_args(path: Path) -> dict:
    """The fields of a ``training_args.bin`` (torch.save zip or a plain pickle); {} if unreadable."""
    try:
        data = path.read_bytes()
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                name = next(n for n in z.namelist() if n.endswith("data.pkl"))
                data = z.read(name)
        obj = _InertUnpickler(io.BytesIO(data)).load()
    except Exception:  # a damaged or foreign file only means "unknown"
        return {}
    return (
        {k: v for k, v in vars(obj).items() if isinstance(v, (bool, int, float, str))}
        if hasattr(obj, "__dict__")
        else {}
    )


def _precision(args: dict) -> str | None:
    if not args or "fp16" not in args:
        return None
    return "fp16" if args.get("fp16") else "bf16" if args.get("bf16") else "no"


def run_info(history: Path) -> RunInfo:
    """Gather what the folders around ``history`` (metrics.jsonl or trainer_state.json) say."""
    folders = [history.parent, *list(history.parents)[1:3]]  # a checkpoint-N folder's run folder too
    for folder in folders:
        report = folder / "train_report.json"
        if report.is_file():
            try:
                d = loads(report.read_text())
                return RunInfo(
                    candidates=d.get("candidates_per_query"),
                    precision=d.get("precision"),
                    world_size=d.get("world_size"),
                    learning_rate=_rate(
                        d["config"].get("learning_rate") if isinstance(d.get("config"), dict) else None
                    ),
                    source=str(report),
                    events=tuple(e for e in d.get("events") or () if isinstance(e, dict) and "kind" in e),
                    stopped=d.get("stopped") if isinstance(d.get("stopped"), str) else None,
                    weights=d.get("weights") if isinstance(d.get("weights"), str) else None,
                )
            except (ValueError, OSError, AttributeError):
                pass
    batch, args, source = None, {}, None
    if history.name == "trainer_state.json":
        try:
            batch = loads(history.read_text()).get("train_batch_size")
            source = str(history)
        except (ValueError, OSError, AttributeError):
            pass
    for folder in folders:
        if (folder / "training_args.bin").is_file():
            args = read_training_args(folder / "training_args.bin")
            if args:
                source = str(folder / "training_args.bin")
                break
    batch = args.get("per_device_train_batch_size", batch)
    return RunInfo(
        batch_size=batch if isinstance(batch, int) and batch > 0 else None,
        precision=_precision(args),
        learning_rate=_rate(args.get("learning_rate")),
        source=source,
    )


def _rate(value: object) -> float | None:
    """A positive, finite learning rate, or None."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")
    return float(value) if ok else None  # type: ignore[arg-type]


def recorded_events(history: Path, info: RunInfo) -> tuple[list[dict], str]:
    """The watchdog's events: train_report.json's, else each metrics.jsonl line's ``events``."""
    if info.events or info.stopped:
        return list(info.events), info.source or str(history)
    if history.suffix != ".jsonl":
        return [], str(history)
    events = []
    for line in history.read_text(encoding="utf-8").splitlines():
        try:
            row = loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("events"), list):
            events += [{"step": row.get("step"), "kind": k} for k in row["events"] if isinstance(k, str)]
    return events, str(history)
