"""lenprof's version, in a module of its own so that any module can name it without importing the
package; and the version of another installed package (:func:`installed`), for the caches' keys.

    >>> installed("msgspec")[0] == __import__("importlib.metadata").metadata.version("msgspec")
    True
    >>> installed("no-such-package-here", "msgspec")[0]
    '-'
"""

import os
import re
import sys

__version__ = "0.1.0"

_DIST = re.compile(r"(?P<name>[^-]+)-(?P<version>[^-]+)\.dist-info")  # as pip and uv write them
_SEPARATORS = re.compile(r"[-_.]+")


def installed(*packages: str) -> list[str]:
    """The version of each of ``packages`` as the first of its distributions on ``sys.path`` names
    it (``<name>-<version>.dist-info``), "-" where none does: what ``importlib.metadata.version``
    answers (tests/test_version.py holds them equal), in one pass over ``sys.path`` and without
    the 14 ms that importing ``importlib.metadata`` takes at every scan's start (the tokenizer
    cache is keyed by three packages' versions)."""
    wanted = {_SEPARATORS.sub("_", p).lower(): i for i, p in enumerate(packages)}
    found, left = ["-"] * len(packages), set(wanted)
    for entry in sys.path:
        if not left:
            break
        if not isinstance(entry, str | os.PathLike) or not isinstance(entry := os.fspath(entry), str):
            continue  # bytes, say: import reads only strings there (importlib.metadata fails on them)
        try:
            names = os.listdir(entry or ".")
        except OSError:  # no folder (a zip, say): importlib.metadata would look inside
            continue
        for name in names:
            match = _DIST.fullmatch(name)
            key = _SEPARATORS.sub("_", match["name"]).lower() if match else None
            if key in left:
                found[wanted[key]] = match["version"]  # type: ignore[index]
                left.discard(key)
    return found
