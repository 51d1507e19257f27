"""WordPiece's count of one ASCII word, without the tokenizer: its greedy longest match, walked
forward through a trie of the vocabulary (see :class:`WordPiece`)."""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np

from lenprof.count.spec import member, tokenizer_spec

# A trie node: each next character -> the node after it; "" -> True where the text read so far
# is an entry ("" is no character, so it never stands for one).
Node = dict


def _trie(entries: Iterable[str]) -> Node:
    root: Node = {}
    for entry in entries:
        node = root
        for ch in entry:
            after = node.get(ch)
            if after is None:
                after = node[ch] = {}
            node = after
        node[""] = True
    return root


class WordPiece:
    """How many tokens WordPiece makes of one ASCII word: the model's own greedy longest-match-first
    (``tokenizers``' ``WordPiece::tokenize``: the longest vocabulary entry that starts the word,
    then the longest ``##``-prefixed entry that continues it from there, and so on; a word with
    a part no entry matches, or longer than ``max_input_chars_per_word``, is one [UNK]),
    counting only. The longest match is found going forward, one character at a time through a
    trie of the entries, which stops at once for most words; the model goes backward from the
    whole word and builds every candidate string, three times slower."""

    def __init__(self, model: dict):
        prefix = model.get("continuing_subword_prefix", "##")
        self.max_chars = int(model.get("max_input_chars_per_word", 100))
        # the words cut's words are ASCII, which no entry holding another character matches: a
        # Chinese vocabulary's characters (half of bge-zh's entries) stay out of the tries
        entries = [t for t in member(model, "vocab") if t.isascii()]
        self.head = _trie(entries)  # entries that start a word
        self.tail = _trie(t[len(prefix) :] for t in entries if t.startswith(prefix))

    def count(self, word: str) -> int:
        n = len(word)
        if n > self.max_chars:
            return 1
        start, tokens, root = 0, 0, self.head
        while start < n:
            longest, node, end = start, root, start
            while end < n:
                node = node.get(word[end])
                if node is None:
                    break
                end += 1
                if "" in node:
                    longest = end
            if longest == start:
                return 1  # no entry matches here: the whole word is [UNK]
            tokens, start, root = tokens + 1, longest, self.tail
        return tokens

    def counts(self, words: list[str]) -> np.ndarray:
        return np.fromiter(map(self.count, words), np.int64, len(words))


@functools.lru_cache(maxsize=4)
def wordpiece(tokenizer_json: str) -> WordPiece:
    return WordPiece(tokenizer_spec(tokenizer_json)["model"])
