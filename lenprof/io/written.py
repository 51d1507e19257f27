"""What a lenprof run wrote, told apart from data when a folder is scanned.

Outputs are often written beside the data (``lenprof scan data/ --out data/profile.json
--clean-out data/clean.jsonl``); read back as data by the next scan of ``data/``, they would
count every row twice. So a folder scan skips:

- every lenprof profile or comparison (the JSON of ``scan --out``), known by its first bytes,
  ``{"schema": "lenprof.profile/1"`` or ``"lenprof.comparison/1"``: a profile is no corpus;
- what such a profile lists as its run's outputs: the cleaned rows (a file, or a ``DIR/`` of
  them), the rejects and the ``--split-dir`` of length buckets, while they are no newer than the
  profile (its run wrote it last: a file written there since is data);
- a rejects file, known by its first line: an object with exactly the keys ``source``, ``line``,
  ``reason``, ``detail``, ``raw`` (and ``raw_truncated_from``), its reason a code.
  Its rows hold no query or positive, so a scan could never have used them.

A profile names its files as its run was given them, relative to the folder that run started
in. That folder is the current one, or the profile's own folder or one above it: the first of
those where the profile's inputs are found. Temporary files (``.lenprof-`` in the name) are
skipped by the walk itself. A file named on the command line is always read, skipped or not
here; outputs written inside a scanned folder without ``--out`` there cannot be recognised,
and the scan says so when it writes them (see ``cli/scan.py``).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "p.json").write_text('{"schema": "lenprof.profile/1", "inputs": [], '
    ...                              f'"outputs": {{"rejects": "{d}/r.jsonl"}}}}')
    >>> _ = (d / "r.jsonl").write_text("")
    >>> sorted(own_outputs([str(d / "p.json"), str(d / "r.jsonl")]).values())  # doctest: +ELLIPSIS
    ['a lenprof profile', 'rejected rows listed in its outputs by ...p.json']
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from lenprof.io import storage
from lenprof.io.jsontext import loads

_HEAD = re.compile(rb'\A(?:\xef\xbb\xbf)?\s*\{\s*"schema"\s*:\s*"lenprof\.(?:profile|comparison)/')
_JSON = (".json", ".jsonl", ".ndjson")
_REASON = re.compile(
    r"[a-z][a-z_]*"
)  # a drop reason's code (rows/checks.py)  # what a profile may be named and a folder scan reads
# An output of a run, as its profile's "outputs" names it: what it holds.
KINDS = {"clean": "cleaned rows", "rejects": "rejected rows", "split": "length buckets"}


def is_profile(path: str) -> bool:
    """Whether ``path`` holds a lenprof profile or comparison (by its first bytes)."""
    if not path.lower().endswith(_JSON):
        return False
    try:
        with open(path, "rb") as fh:
            return _HEAD.match(fh.read(256)) is not None
    except OSError:
        return False


_REJECT_KEYS = (
    {"source", "line", "reason", "detail", "raw"},
    {"source", "line", "reason", "detail", "raw", "raw_truncated_from"},
)


def is_rejects(path: str) -> bool:
    """Whether ``path`` is a lenprof rejects file (by its first line). Its keys are enough: a row
    with no query or positive could never be scanned as data anyway."""
    if not path.lower().endswith(_JSON):
        return False
    try:
        with open(path, "rb") as fh:
            if fh.read(11) != b'{"source": ':  # how every line of a rejects file starts
                return False
            first = b'{"source": ' + fh.readline(1 << 20)
    except OSError:
        return False
    return _rejects_line(first)


def _rejects_line(first: bytes) -> bool:
    if not first.startswith(b'{"source": '):
        return False
    try:
        row = loads(first)
    except ValueError:
        return False
    return (
        isinstance(row, dict)
        and set(row) in _REJECT_KEYS
        and _REASON.fullmatch(str(row["reason"])) is not None
    )


def _looks(url: str) -> tuple[bool, bool]:
    """(:func:`is_rejects`, :func:`is_profile`) of an object, from one read of its first bytes
    (a request is what costs); a server that fails raises ``OSError``: it is no "no"."""
    if not url.lower().endswith(_JSON):
        return False, False
    try:
        with storage.open_head(url) as fh:
            head = fh.read(256)
            first = head.split(b"\n", 1)[0] if b"\n" in head else head + fh.readline(1 << 20)
    except FileNotFoundError:
        return False, False
    return _rejects_line(first), _HEAD.match(head) is not None


def own_outputs(found: Iterable[str]) -> dict[str, str]:
    """Which of the files ``found`` in a folder (or under a prefix) a lenprof run wrote, each
    with why it is skipped. Objects in storage are looked at 32 at a time: each look is a request."""
    found = list(found)
    real = {p if storage.is_url(p) else os.path.realpath(p): p for p in found}
    remote = [p for p in found if storage.is_url(p)]
    looked: dict[str, tuple[bool, bool]] = {}
    if remote:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(32) as pool:
            looked = dict(zip(remote, pool.map(_looks, remote), strict=True))
    skip: dict[str, str] = {}
    for path in found:
        rejects, profile = looked[path] if path in looked else (is_rejects(path), is_profile(path))
        if rejects:
            skip.setdefault(path, "a lenprof rejects file")
        if not profile:
            continue
        skip[path] = "a lenprof profile"
        written = _mtime(path)
        for target, kind in _listed(path):
            under = target.rstrip("/") + "/" if storage.is_url(target) else target + os.sep
            for r, p in real.items():
                # what the run wrote is no newer than its profile, written last: a file changed or
                # put there since is data again
                if (r == target or r.startswith(under)) and p not in skip and _mtime(p) <= written:
                    skip[p] = f"{kind} listed in its outputs by {path}"
    return skip


def _mtime(path: str) -> int:
    try:
        return storage.mtime_ns(path)
    except OSError:
        return 1 << 62  # gone: never skipped as an output


def _listed(profile_path: str) -> list[tuple[str, str]]:
    """The real paths a profile (or each profile of a comparison) lists as its outputs."""
    try:
        if storage.is_url(profile_path):
            with storage.open_head(profile_path) as fh:
                saved = loads(fh.read().decode("utf-8"))
        else:
            with open(profile_path, encoding="utf-8") as fh:
                saved = loads(fh.read())
    except (OSError, ValueError):
        return []  # a damaged profile: skipped itself, and lists nothing
    profiles = saved.get("profiles") if isinstance(saved, dict) else None
    profiles = profiles if isinstance(profiles, list) else [saved]
    listed = []
    for profile in profiles:
        if not isinstance(profile, dict) or not isinstance(profile.get("outputs"), dict):
            continue
        outputs = {k: v for k, v in profile["outputs"].items() if k in KINDS and isinstance(v, str)}
        listed += [(v.rstrip("/"), KINDS[k]) for k, v in outputs.items() if storage.is_url(v)]
        outputs = {k: v for k, v in outputs.items() if not storage.is_url(v)}
        if storage.is_url(profile_path) or not outputs:
            continue  # a profile in storage lists its outputs in storage
        inputs = [i.get("path") for i in profile.get("inputs") or [] if isinstance(i, dict)]
        base = _started_in(profile_path, [p for p in inputs if isinstance(p, str)], list(outputs.values()))
        if base is not None:
            listed += [(os.path.realpath(os.path.join(base, v)), KINDS[k]) for k, v in outputs.items()]
    return listed


def _started_in(profile_path: str, inputs: list[str], outputs: list[str]) -> str | None:
    """The folder the profile's run started in: the current one, else the profile's folder or one
    above it, the first where every input the profile names is found (without file inputs, as
    stdin, where every output is)."""
    files = [p for p in inputs if p != "<stdin>" and "://" not in p] or outputs
    if not files:
        return None
    here = os.path.dirname(os.path.realpath(profile_path))
    bases = [os.getcwd()]
    while here not in bases[1:]:  # up to the root, whose parent is itself
        bases.append(here)
        here = os.path.dirname(here)
    for base in bases:
        if all(os.path.exists(os.path.join(base, p)) for p in files):
            return base
    return None
