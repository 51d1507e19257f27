"""Files in and out, and nothing about what a row means.

- ``discover``: paths, globs and folders to inputs; ``files``: an input's bytes and lines;
  ``readers/``: JSON arrays, CSV/TSV, stdin, ``datasets``; ``parquet``: spans of row groups;
  ``records``: shards and their records, the one way rows are read; ``stamps``: inputs that change.
- ``transaction`` and ``sinks``: every output written whole or not at all; ``columns``: the Parquet
  schema of cleaned rows; ``buckets``: cleaned rows by length; ``written``: a run's own outputs,
  told apart from data; ``jsontext``: how lenprof writes and reads JSON.

Imports only ``lenprof.errors`` from outside itself.
"""
