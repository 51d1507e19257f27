"""lenprof: exact, trainer-faithful token-length profiles and data checks for embedding fine-tuning."""

from __future__ import annotations

__version__ = "0.1.0"

from .io import InputError  # noqa: E402
from .profile import LengthHistogram  # noqa: E402
from .scan import ScanOptions, scan  # noqa: E402
from .schema import Fields  # noqa: E402
from .stats import Profile  # noqa: E402
from .tokenize import LoadedTokenizer, TokenizerError, load_tokenizer  # noqa: E402

__all__ = [
    "Fields",
    "InputError",
    "LengthHistogram",
    "LoadedTokenizer",
    "Profile",
    "ScanOptions",
    "TokenizerError",
    "__version__",
    "load_tokenizer",
    "scan",
]
