"""Reading a profile's JSON back, every value checked: a profile from elsewhere is an input like any other."""

from __future__ import annotations

from lenprof.count.tokenizer import TokenizerInfo
from lenprof.io.jsontext import loads
from lenprof.rows.fields import Fields
from lenprof.rows.options import ScanOptions
from lenprof.stats.breakdown import InputBreakdown
from lenprof.stats.histogram import LengthHistogram
from lenprof.stats.runinfo import Against, Counting, RunInfo
from lenprof.stats.scan_stats import TEXT_FIELDS, LongText


class ProfileError(ValueError):
    """A file that is not a lenprof profile, or a damaged one. Exit code 2."""


def load_json(path: str) -> object:
    """A saved JSON file; :class:`ProfileError` names the file when it cannot be read or parsed."""
    try:
        with open(path, encoding="utf-8") as fh:
            return loads(fh.read())
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot be read ({exc})") from exc
    except ValueError as exc:
        raise ProfileError(f"{path}: not JSON ({exc}); write a profile with lenprof scan --out") from exc


def _describe(exc: Exception) -> str:
    return f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)


def _count(value: object, what: str, limit: int = 1 << 62) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise ValueError(f"{what} must be a whole number from 0 to {limit}, got {value!r}")
    return value


def _maybe(value: object, what: str, limit: int = 1 << 40) -> int | None:
    return None if value is None else _count(value, what, limit)


def _text(value: object, what: str, optional: bool = False) -> str:
    if (value is None and optional) or isinstance(value, str):
        return value  # type: ignore[return-value]
    raise ValueError(f"{what} must be text, got {type(value).__name__}")


def _mapping(value: object, what: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object, got {type(value).__name__}")
    return value


def _list(value: object, what: str) -> list:
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list, got {type(value).__name__}")
    return value


def _histogram(h: object, name: str) -> LengthHistogram:
    h = _mapping(h, f"fields.{name}.histogram")
    lengths, counts = h["lengths"], h["counts"]
    if not isinstance(lengths, list) or not isinstance(counts, list) or len(lengths) != len(counts):
        raise ValueError(f"fields.{name}.histogram needs two lists of one length")
    for v in lengths:
        _count(v, f"fields.{name}.histogram lengths", 1 << 24)  # no tokenizer input is 16M tokens
    for v in counts:
        _count(v, f"fields.{name}.histogram counts")
    if lengths != sorted(set(lengths)):
        raise ValueError(f"fields.{name}.histogram lengths must be distinct and ascending")
    return LengthHistogram.from_sparse(lengths, counts)


def _tokenizer(t: object) -> TokenizerInfo:
    t = _mapping(t, "tokenizer")
    return TokenizerInfo(
        _text(t["name"], "tokenizer.name"),
        _text(t["source"], "tokenizer.source"),
        _maybe(t.get("model_max_length"), "tokenizer.model_max_length"),
        _maybe(t.get("max_position_embeddings"), "tokenizer.max_position_embeddings"),
        _count(t.get("position_offset", 0), "tokenizer.position_offset", 1 << 20),
        _maybe(t.get("st_max_seq_length"), "tokenizer.st_max_seq_length"),
    )


def _options(settings: object, rec: dict) -> ScanOptions:
    settings = _mapping(settings, "settings")
    names = _mapping(settings["fields"], "settings.fields")
    roles = {r: _text(names[r], f"settings.fields.{r}") for r in ("query", "pos", "neg")}
    defaults = Fields()
    coverage = rec["coverage"]
    if isinstance(coverage, bool) or not isinstance(coverage, (int, float)):
        raise ValueError(f"recommendation.coverage must be a number, got {coverage!r}")
    optional = {
        k: settings[k]
        for k in ("query_instruction_format", "passage_instruction_format", "max_line_bytes")
        if k in settings
    }
    for k in ("query_instruction_format", "passage_instruction_format"):
        if k in optional:
            _text(optional[k], f"settings.{k}")
    return ScanOptions(
        fields=Fields(**roles, mapped=frozenset(v for k, v in roles.items() if v != getattr(defaults, k))),
        query_instruction=_text(settings.get("query_instruction"), "settings.query_instruction", True),
        passage_instruction=_text(settings.get("passage_instruction"), "settings.passage_instruction", True),
        coverage=float(coverage),
        multiple_of=_count(rec["multiple_of"], "recommendation.multiple_of", 1 << 20),
        min_neg=_count(settings.get("min_neg", 1), "settings.min_neg", 1 << 20),
        train_group_size=_maybe(settings.get("train_group_size"), "settings.train_group_size", 1 << 20),
        raw_limit=_count(settings.get("raw_limit", 4096), "settings.raw_limit"),
        **optional,
    )


def _long_text(t: object) -> LongText:
    t = _mapping(t, "longest[]")
    item = t.get("item")
    return LongText(
        _count(t["tokens"], "longest[].tokens"),
        0,
        _text(t["source"], "longest[].source"),
        _count(t["line"], "longest[].line"),
        None if item is None else _count(item, "longest[].item"),
        _count(t["chars"], "longest[].chars"),
        _text(t["head"], "longest[].head"),
    )


def _breakdown(b: object, options: ScanOptions, cap: int | None) -> InputBreakdown:
    b = _mapping(b, "per_input[]")
    fields = _mapping(b["fields"], "per_input[].fields")
    return InputBreakdown.of(
        _text(b["path"], "per_input[].path"),
        _count(b["read"], "per_input[].read"),
        {
            _text(r, "per_input[].dropped"): _count(n, "per_input[].dropped")
            for r, n in _mapping(b["dropped"], "per_input[].dropped").items()
        },
        {f: _histogram(_mapping(fields[f], f"per_input[].fields.{f}")["histogram"], f) for f in TEXT_FIELDS},
        options.coverage,
        options.multiple_of,
        cap,
    )


def _number(value: object, what: str, top: float = 1e15) -> float | None:
    """A duration or a share as written: a number from 0 to ``top`` (an int stays an int, so it
    is written back as it was read); nan is none, as it fails both comparisons."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= top:
        raise ValueError(f"{what} must be a number from 0 to {top:g}, got {value!r}")
    return value


def _run(r: object) -> RunInfo:
    """``run``: how the scan ran. Every key is optional, as early profiles have fewer."""
    r = _mapping(r, "run")
    against = r.get("against")
    if against is not None:
        a = _mapping(against, "run.against")
        if not isinstance(a["drop_leaks"], bool):
            raise ValueError(f"run.against.drop_leaks must be true or false, got {a['drop_leaks']!r}")
        against = Against(
            tuple(_text(f, "run.against.files[]") for f in _list(a["files"], "run.against.files")),
            _count(a["rows"], "run.against.rows"),
            a["drop_leaks"],
        )
    counting = r.get("counting")
    if counting is not None:
        c = _mapping(counting, "run.counting")
        counting = Counting(
            _text(c["path"], "run.counting.path"),
            _number(c["fast_share"], "run.counting.fast_share", 1),  # type: ignore[arg-type]
            _count(c["self_checked"], "run.counting.self_checked"),
            _text(c.get("fast_path_failed"), "run.counting.fast_path_failed", True),
        )
    filled, not_written, out_of_core = r.get("filled"), r.get("not_written"), r.get("out_of_core")
    if out_of_core not in (None, True):
        raise ValueError(f"run.out_of_core must be true or absent, got {out_of_core!r}")
    return RunInfo(
        engine=_text(r.get("engine"), "run.engine", True),
        workers=_maybe(r.get("workers"), "run.workers"),
        shards=_maybe(r.get("shards"), "run.shards"),
        seconds=_number(r.get("seconds"), "run.seconds"),
        tokenize_s=_number(r.get("tokenize_s"), "run.tokenize_s"),
        against=against,
        filled=None
        if filled is None
        else {
            _text(t, "run.filled file"): {
                _text(k, "run.filled key"): _count(n, f"run.filled.{t}.{k}")
                for k, n in _mapping(keys, f"run.filled.{t}").items()
            }
            for t, keys in _mapping(filled, "run.filled").items()
        },
        not_written=None
        if not_written is None
        else tuple(_text(t, "run.not_written[]") for t in _list(not_written, "run.not_written")),
        prompted=_maybe(r.get("prompted"), "run.prompted"),
        texts_tokenized=_maybe(r.get("texts_tokenized"), "run.texts_tokenized"),
        counting=counting,
        out_of_core=out_of_core,
        texts_embedded=_maybe(r.get("texts_embedded"), "run.texts_embedded"),
        embeddings_cached=_maybe(r.get("embeddings_cached"), "run.embeddings_cached"),
    )
