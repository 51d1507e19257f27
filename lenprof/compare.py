"""Several tokenizers on one corpus, in one pass: choosing a base model means comparing them.

The corpus is read, checked and repaired once, each distinct text is cut into chunks once, and
every tokenizer counts it; each gets the profile a scan with it alone would give (the test holds
them equal), kept side by side in one JSON (``lenprof.comparison/1``: one profile per tokenizer).

    comparison = compare(["data/"], tokenizers=["BAAI/bge-base-en-v1.5", "BAAI/bge-m3"])
    [p.recommendation.passage_max_len for p in comparison.profiles]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .buckets import LengthBuckets
from .engines.driver import Progress
from .engines.local import LocalEngine
from .engines.plan import DEFAULT_SHARD_BYTES, Outputs, make_plan
from .options import ScanOptions
from .profile import Profile, ProfileError, load_json
from .tokenize import LoadedTokenizer
from .version import __version__

SCHEMA = "lenprof.comparison/1"


@dataclass(frozen=True)
class Comparison:
    """One profile per tokenizer, in the order given; rows, checks and repairs are the same in each."""

    profiles: list[Profile]

    @property
    def names(self) -> list[str]:
        return [p.tokenizer.name for p in self.profiles]

    def profile(self, name: str) -> Profile:
        """The profile of the tokenizer named ``name`` (as ``--tokenizer`` gave it)."""
        for p in self.profiles:
            if name == p.tokenizer.name:
                return p
        raise ProfileError(f"no tokenizer {name!r} in this comparison; it has {', '.join(self.names)}")

    def recommend(
        self, coverage: float | None = None, multiple_of: int | None = None, cap: int | None | bool = True
    ) -> Comparison:
        return Comparison([p.recommend(coverage, multiple_of, cap) for p in self.profiles])

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "lenprof_version": __version__,
            "tokenizers": self.names,
            "profiles": [p.to_dict() for p in self.profiles],
        }

    @classmethod
    def from_dict(cls, d: object) -> Comparison:
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            got = d.get("schema") if isinstance(d, dict) else type(d).__name__
            raise ProfileError(f"not a lenprof comparison (schema {got!r}, expected {SCHEMA!r})")
        profiles = d.get("profiles")
        if not isinstance(profiles, list) or not profiles:
            raise ProfileError("damaged comparison: 'profiles' must be a list of profiles")
        return cls([Profile.from_dict(p, f"profiles[{i}]") for i, p in enumerate(profiles)])

    def json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"

    def html(self) -> str:
        from .report.compare import render_comparison_html

        return render_comparison_html(self)


def read_saved(path: str) -> Profile | Comparison:
    """A saved profile or comparison (``scan --out``), whichever the file holds."""
    d = load_json(path)
    if isinstance(d, dict) and d.get("schema") == SCHEMA:
        try:
            return Comparison.from_dict(d)
        except ProfileError as exc:
            raise ProfileError(
                f"{path}: {exc}; write a comparison with lenprof scan --tokenizer A --tokenizer B --out"
            ) from exc
    return Profile.read(path)


def compare(
    paths: Sequence[str] | str,
    options: ScanOptions | None = None,
    *,
    tokenizers: Sequence[LoadedTokenizer | str | None],
    clean_out: str | None = None,
    rejects_out: str | None = None,
    profile_out: str | None = None,
    report_out: str | None = None,
    split: LengthBuckets | None = None,
    clean_format: str = "input",
    engine=None,
    workers: int | None = None,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    exact_only: bool = False,
    against: Sequence[str] = (),
    drop_leaks: bool = False,
    dataset_split: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    require_kept: bool = False,
) -> Comparison:
    """Scan once, count with every tokenizer: :func:`lenprof.scan` for several tokenizers.

    Cleaned rows, rejects and length buckets (by the first tokenizer's lengths) are written once;
    ``profile_out`` gets the comparison JSON and ``report_out`` the side-by-side report.
    """
    from .scan import scan_plan

    if not tokenizers:
        raise ValueError("compare() needs at least one tokenizer")
    first, *others = tokenizers
    outputs = Outputs(clean_out, rejects_out, profile_out, report_out, split, clean_format)
    plan = make_plan(
        paths,
        options,
        first,
        outputs,
        shard_bytes,
        exact_only,
        against,
        drop_leaks,
        dataset_split,
        others,  # type: ignore[arg-type]
    )
    return Comparison(scan_plan(plan, engine or LocalEngine(workers), on_progress, require_kept))
