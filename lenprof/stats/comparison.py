"""A comparison: one profile per tokenizer of one corpus (``lenprof.comparison/1``), and reading
a saved profile or comparison back. :func:`lenprof.compare` makes one; ``report/compare.py``
renders it."""

from __future__ import annotations

import json
from dataclasses import dataclass

from lenprof.stats.profile import Profile
from lenprof.stats.profile_json import ProfileError, load_json
from lenprof.version import __version__

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
