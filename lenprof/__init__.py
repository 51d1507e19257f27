"""lenprof: exact, trainer-faithful token-length profiles and data checks for embedding fine-tuning."""

from __future__ import annotations

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
from lenprof.version import __version__

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
