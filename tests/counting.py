"""What the fast-count property tests share: each tokenizer counted alone and all of them together
(shared cut and caches, as a comparison counts), against the tokenizer itself."""

from __future__ import annotations

from collections.abc import Callable

from tokenizers import Tokenizer

from lenprof.count.exact import count_tokens
from lenprof.count.fast.counter import FastCounter, count_together, share_caches


class Counters:
    """A counter per tokenizer, and the same counters again counting together: made once, so
    later examples count from warm caches. ``promised(name, backend, batch)`` is how many of a
    batch's texts the fast path must take (the test is not vacuous)."""

    def __init__(
        self,
        backends: dict[str, Tokenizer],
        family: str,
        promised: Callable[[str, Tokenizer, list[str]], int],
    ):
        self.backends, self.family, self.promised = backends, family, promised
        self.alone = {name: FastCounter(backend) for name, backend in backends.items()}
        self.together = [FastCounter(backend) for backend in backends.values()]
        share_caches(self.together)

    def count_like_the_tokenizer(self, batch: list[str]) -> None:
        exact = {name: count_tokens(backend, batch).tolist() for name, backend in self.backends.items()}
        for name, counter in self.alone.items():
            assert counter.rule is not None and counter.rule.family == self.family, name
            fast = counter.fast
            assert counter.count(batch).tolist() == exact[name], name
            assert counter.mismatch is None, name
            assert counter.fast - fast == self.promised(name, self.backends[name], batch), name
        assert count_together(self.together, batch).tolist() == list(exact.values())
        assert all(counter.mismatch is None for counter in self.together)
