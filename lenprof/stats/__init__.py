"""What a scan found, in forms that add and that are saved: histograms, scan stats, per-input
breakdowns, recommendations, the typed :class:`~lenprof.stats.profile.Profile` and comparisons.

Imports ``io``, ``rows`` and ``count`` below it; never ``engine``, ``report`` or ``cli``.
"""
