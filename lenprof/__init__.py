"""lenprof: exact, trainer-faithful token-length profiles and data checks for embedding fine-tuning."""

from __future__ import annotations

from .buckets import LengthBuckets  # noqa: E402
from .compare import Comparison, compare  # noqa: E402
from .histogram import LengthHistogram  # noqa: E402
from .inputs import InputError  # noqa: E402
from .options import ScanOptions  # noqa: E402
from .outputs import OutputError  # noqa: E402
from .profile import Profile, ProfileError  # noqa: E402
from .scan import NothingKept, scan  # noqa: E402
from .schema import Fields  # noqa: E402
from .tokenize import LoadedTokenizer, TokenizerError, TokenizerInfo, load_tokenizer  # noqa: E402
from .version import __version__  # noqa: E402

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
    "ScanOptions",
    "TokenizerError",
    "TokenizerInfo",
    "__version__",
    "compare",
    "load_tokenizer",
    "scan",
]
