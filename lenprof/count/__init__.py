"""Token counts: the tokenizer loaded as the trainer loads it (``tokenizer``, ``load``, ``hub``),
counted exactly (``exact``), or faster with the same result (``fast/``).

Imports ``io`` and ``lenprof.errors`` below it; never ``rows``, ``stats``, ``engine``, ``report``
or ``cli``.
"""
