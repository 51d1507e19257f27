"""WordPiece's count of one word, without the tokenizer: its greedy longest match, walked
forward (see :class:`WordPiece`)."""

from __future__ import annotations

import functools
import json

import numpy as np


class WordPiece:
    """How many tokens WordPiece makes of one word: the model's own greedy longest-match-first
    (``tokenizers``' ``WordPiece::tokenize``: the longest vocabulary entry that starts the word,
    then the longest ``##``-prefixed entry that continues it from there, and so on; a word with
    a part no entry matches, or longer than ``max_input_chars_per_word``, is one [UNK]),
    counting only. The longest match is found going forward, while the text read so far still
    begins some entry, which stops at once for most words; the model goes backward from the
    whole word and builds every candidate string, three times slower."""

    def __init__(self, model: dict):
        prefix = model.get("continuing_subword_prefix", "##")
        self.max_chars = int(model.get("max_input_chars_per_word", 100))
        self.head = frozenset(model["vocab"])
        self.tail = frozenset(t[len(prefix) :] for t in self.head if t.startswith(prefix))
        self.head_starts = frozenset(t[:i] for t in self.head for i in range(1, len(t) + 1))
        self.tail_starts = frozenset(t[:i] for t in self.tail for i in range(1, len(t) + 1))

    def count(self, word: str) -> int:
        n = len(word)
        if n > self.max_chars:
            return 1
        start, tokens, entries, starts = 0, 0, self.head, self.head_starts
        while start < n:
            longest, end = start, start + 1
            while end <= n:
                part = word[start:end]
                if part not in starts:
                    break
                if part in entries:
                    longest = end
                end += 1
            if longest == start:
                return 1  # no entry matches here: the whole word is [UNK]
            tokens, start, entries, starts = tokens + 1, longest, self.tail, self.tail_starts
        return tokens

    def counts(self, words: list[str]) -> np.ndarray:
        return np.fromiter(map(self.count, words), np.int64, len(words))


@functools.lru_cache(maxsize=4)
def wordpiece(tokenizer_json: str) -> WordPiece:
    return WordPiece(json.loads(tokenizer_json)["model"])
