"""What a row is and whether it is kept: fields and layouts, parsing, every check and its reason,
the cleaned row as a trainer reads it, and ``--against`` leaks.

Imports ``io`` below it; never ``count``, ``stats``, ``engine``, ``report`` or ``cli``.
"""
