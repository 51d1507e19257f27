"""The normalizer of a SentencePiece tokenizer over many texts, skipping its precompiled map
(``nmt_nfkc``'s NFKC) on ASCII texts, where the map is proven to change each character alone
(see :class:`Normalizer`)."""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable
from typing import Any

# Rust's char::is_whitespace (Unicode's White_Space), where Strip and WhitespaceSplit cut
# (Python's str.split() and str.strip() also cut at \x1c-\x1f; a test holds this list against
# the pre-tokenizer)
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)


class Normalizer:
    """The tokenizer's normalizer over many texts (None for a text it fails on: a lone
    surrogate), run as it is on every text but ASCII ones without a return, where the
    normalizer starts with a precompiled map (``nmt_nfkc``'s): the map changes each grapheme
    cluster alone, and in ASCII every character is a cluster of its own but CR LF, so there it
    changes each character as it changes that character alone (asked of the map itself, for
    each, here); the steps after it are done here as the tokenizer does them (Strip at Rust's
    whitespace, Replace of a string, or of runs of spaces), or the text takes the normalizer
    too. Running the map costs most of a normalizer's time (1.7 s of 1.8 on 29 MB of English).

        ["Hello,\tworld  "] -> ["Hello, world"]   (nmt_nfkc: tab to space; Strip; runs of spaces)
    """

    def __init__(self, backend: Any):
        self.whole = backend.normalizer.normalize_str if backend.normalizer is not None else str
        self.changed: list[tuple[str, str]] | None = None  # ASCII the map changes: None, no ASCII way
        # the normalizer's own JSON: a tokenizer's whole (its vocabulary) is megabytes to parse
        spec = json.loads(backend.normalizer.__getstate__()) if backend.normalizer is not None else {}
        parts = spec.get("normalizers", []) if spec.get("type") == "Sequence" else [spec]
        steps = [_step(part) for part in parts[1:]]
        if not parts or parts[0].get("type") != "Precompiled" or None in steps:
            return
        from tokenizers.normalizers import Precompiled

        mapped = Precompiled(base64.b64decode(parts[0]["precompiled_charsmap"])).normalize_str
        changed = {c: mapped(c) for c in map(chr, range(128)) if c != "\r" and mapped(c) != c}
        if any(c in changed for out in changed.values() for c in out):
            return  # replaced one after the other, they would not be replaced at once
        self.changed, self.steps = list(changed.items()), steps
        self.printable_kept = not any(c.isprintable() for c in changed)

    def __call__(self, texts: list[str]) -> list[str | None]:
        out: list[str | None] = []
        whole, changed = self.whole, self.changed
        for text in texts:
            if changed is None or not text.isascii() or "\r" in text:
                try:
                    out.append(whole(text))
                except Exception:
                    out.append(None)
                continue
            if not (self.printable_kept and text.isprintable()):
                for c, to in changed:
                    if c in text:
                        text = text.replace(c, to)
            for step in self.steps:
                text = step(text)
            out.append(text)
        return out


def _step(spec: dict) -> Callable[[str], str] | None:
    """A normalizer after the precompiled map, as Python does it the same, or None."""
    kind, pattern, content = spec.get("type"), spec.get("pattern") or {}, spec.get("content", "")
    if kind == "Strip":  # at Rust's whitespace (str.strip() would also strip \x1c-\x1f)
        left, right = spec.get("strip_left", True), spec.get("strip_right", True)
        if left and right:
            return lambda s: s.strip(WHITESPACE)
        if left:
            return lambda s: s.lstrip(WHITESPACE)
        return (lambda s: s.rstrip(WHITESPACE)) if right else (lambda s: s)
    if kind == "Replace" and pattern.get("String"):
        return lambda s: s.replace(pattern["String"], content)
    if kind == "Replace" and pattern.get("Regex") == " {2,}":  # SentencePiece's extra spaces
        return functools.partial(_RUNS_OF_SPACES.sub, lambda _: content)  # content as it is, no \1
    return None


_RUNS_OF_SPACES = re.compile(" {2,}")
