"""What a scan checks and measures: the options that decide its results.

How a scan runs (engine, workers, shard size) never changes a result, so it is not here.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from lenprof.rows.fields import Fields

MAX_LINE_BYTES = 32 << 20  # a JSON line longer than this is dropped as line_too_long
# A text longer than this (in characters) is dropped as text_too_long. The tokenizer holds about
# 64 bytes per character of a text it encodes (offsets, ids, word and normalisation tables), so
# one such text costs a worker about 64 MiB; a row of 32 MiB (--max-line-bytes) could otherwise
# cost 2 GiB. 1 Mi characters is about 250,000 tokens: 30 times the longest context an embedding
# model reads (8,192 tokens), so no text worth training on is ever near it.
MAX_TEXT_CHARS = 1 << 20


class OptionsError(ValueError):
    """Scan options that cannot work together. Exit code 2."""


@dataclass(frozen=True)
class ScanOptions:
    """How rows are read, checked and measured (defaults follow FlagEmbedding's)."""

    fields: Fields = Fields()
    query_instruction: str | None = None
    query_instruction_format: str = "{}{}"
    passage_instruction: str | None = None
    passage_instruction_format: str = "{}{}"
    coverage: float = 95.0
    multiple_of: int = 8
    min_neg: int = 1
    train_group_size: int | None = None
    raw_limit: int = 4096  # characters of a rejected line kept in the rejects file
    max_line_bytes: int = MAX_LINE_BYTES
    max_text_chars: int = MAX_TEXT_CHARS

    def __post_init__(self) -> None:
        if not 0 < self.coverage <= 100:
            raise OptionsError(f"coverage must be in (0, 100], got {self.coverage}")
        if self.multiple_of < 1 or self.min_neg < 0:
            raise OptionsError("multiple_of must be >= 1 and min_neg >= 0")
        if self.raw_limit < 0 or self.max_line_bytes < 1 or self.max_text_chars < 1:
            raise OptionsError("raw_limit must be >= 0, max_line_bytes and max_text_chars >= 1")
        for name in ("query_instruction_format", "passage_instruction_format"):
            # as FlagEmbedding's arguments do: a shell passes '<instruct>{}\n<query>{}' with a
            # backslash and an n, which it trains as a newline
            fmt = getattr(self, name).replace("\\n", "\n")
            object.__setattr__(self, name, fmt)
            try:
                # plain fields only: a conversion or a width (``{!r:>99999999999}``) would change the
                # text, or ask for gigabytes just to check it
                fields = [(f, c, spec) for _, f, spec, c in string.Formatter().parse(fmt) if f is not None]
                names = [f for f, _, _ in fields]
                ok = names in (["", ""], ["0", "1"]) and not any(c or spec for _, c, spec in fields)
                ok = ok and fmt.format("a", "b") is not None
            except (IndexError, KeyError, ValueError):
                ok = False
            if not ok:
                raise OptionsError(
                    f"{name} {fmt!r} must take two plain {{}} fields (no conversion or width): instruction, then text"
                )

    @property
    def line_head_bytes(self) -> int:
        """Bytes kept of a line over ``max_line_bytes``: enough for ``raw_limit`` characters."""
        return 4 * self.raw_limit

    def query_text(self, query: str, prompt: str | None = None) -> str:
        """The query as FlagEmbedding trains it: with the row's own ``prompt`` (even ``""``) in
        place of the instruction, and as it is when there is neither. A row's prompt counts even
        without an instruction: FlagEmbedding applies it in its same-dataset mode, and in its
        default mode once ``--query_instruction_for_retrieval`` is set (its only way to train
        prompts; only that mode without the flag drops them, and then lenprof's lengths err long).

            >>> o = ScanOptions()
            >>> o.query_text("q"), o.query_text("q", "P: "), ScanOptions(query_instruction="I: ").query_text("q", "")
            ('q', 'P: q', 'q')
        """
        instruction = self.query_instruction if prompt is None else prompt
        if instruction is None:
            return query
        return self.query_instruction_format.format(instruction, query)

    def passage_text(self, text: str) -> str:
        if self.passage_instruction is None:
            return text
        return self.passage_instruction_format.format(self.passage_instruction, text)

    def describe(self) -> dict:
        """The ``settings`` section of the profile JSON (coverage and multiple_of live in its
        ``recommendation``)."""
        return {
            "fields": {"query": self.fields.query, "pos": self.fields.pos, "neg": self.fields.neg},
            "query_instruction": self.query_instruction,
            "query_instruction_format": self.query_instruction_format,
            "passage_instruction": self.passage_instruction,
            "passage_instruction_format": self.passage_instruction_format,
            "min_neg": self.min_neg,
            "train_group_size": self.train_group_size,
            "raw_limit": self.raw_limit,
            "max_line_bytes": self.max_line_bytes,
            "max_text_chars": self.max_text_chars,
        }
