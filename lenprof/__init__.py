"""lenprof: exact, trainer-faithful token-length profiles and data checks for embedding fine-tuning."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lenprof.version import __version__

# What ``from lenprof import X`` gives, each imported when first asked for (PEP 562): importing
# the package, as every ``lenprof.x`` module and the console script do first, stays cheap.
_EXPORTS = {
    "compare": "lenprof.api",
    "scan": "lenprof.api",
    "load_tokenizer": "lenprof.count.load",
    "LoadedTokenizer": "lenprof.count.tokenizer",
    "TokenizerError": "lenprof.count.tokenizer",
    "TokenizerInfo": "lenprof.count.tokenizer",
    "NothingKept": "lenprof.engine.run",
    "InputError": "lenprof.errors",
    "OutputError": "lenprof.errors",
    "LengthBuckets": "lenprof.io.buckets",
    "Fields": "lenprof.rows.fields",
    "ScanOptions": "lenprof.rows.options",
    "Comparison": "lenprof.stats.comparison",
    "LengthHistogram": "lenprof.stats.histogram",
    "Profile": "lenprof.stats.profile",
    "ProfileError": "lenprof.stats.profile_json",
    "RunInfo": "lenprof.stats.runinfo",
}

if TYPE_CHECKING:
    from lenprof.api import compare, scan
    from lenprof.count.load import load_tokenizer
    from lenprof.count.tokenizer import LoadedTokenizer, TokenizerError, TokenizerInfo
    from lenprof.engine.run import NothingKept
    from lenprof.errors import InputError, OutputError
    from lenprof.io.buckets import LengthBuckets
    from lenprof.rows.fields import Fields
    from lenprof.rows.options import ScanOptions
    from lenprof.stats.comparison import Comparison
    from lenprof.stats.histogram import LengthHistogram
    from lenprof.stats.profile import Profile
    from lenprof.stats.profile_json import ProfileError
    from lenprof.stats.runinfo import RunInfo

__all__ = [
    "Comparison",
    "Fields",
    "InputError",
    "LengthBuckets",
    "LengthHistogram",
    "LoadedTokenizer",
    "NothingKept",
    "OutputError",
    "Profile",
    "ProfileError",
    "RunInfo",
    "ScanOptions",
    "TokenizerError",
    "TokenizerInfo",
    "__version__",
    "compare",
    "load_tokenizer",
    "scan",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lenprof' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # asked once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
