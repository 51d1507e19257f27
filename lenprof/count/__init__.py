"""Token counts: the tokenizer loaded as the trainer loads it (``tokenizer``, ``hub``), counted
exactly (``exact``), or faster with the same result (``fast/``), and the run's keyed hash
(``hashing``).

Imports ``io`` and ``lenprof.errors`` below it; never ``rows``, ``stats``, ``engine``, ``report``
or ``cli``.
"""
