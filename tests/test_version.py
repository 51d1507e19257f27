"""``installed`` against ``importlib.metadata``, the oracle, for every distribution of this
environment that pip or uv installed (a ``.dist-info`` folder), and the packages the caches' keys
name."""

from __future__ import annotations

import importlib.metadata
import sys

from packaging.version import Version

from lenprof.version import installed


def test_every_installed_distribution_has_the_version_importlib_metadata_gives():
    seen = 0
    for dist in importlib.metadata.distributions():
        path = getattr(dist, "_path", None)
        if path is None or not str(path).endswith(".dist-info"):
            continue  # an .egg-info, or inside a zip: not what `installed` reads
        name = dist.metadata["Name"]
        if str(path.parent) not in sys.path:
            continue
        if importlib.metadata.distribution(name)._path != path:  # type: ignore[attr-defined]
            continue  # shadowed by an earlier one on sys.path: that one is the answer
        assert Version(installed(name)[0]) == Version(dist.version), name
        seen += 1
    assert seen > 50  # the test environment's packages, not a handful


def test_the_packages_the_keys_name_in_one_call():
    packages = ["transformers", "lenprof-no-such-package", "tokenizers", "sentencepiece", "torch", "Jinja2"]
    want = []
    for package in packages:
        try:
            want.append(importlib.metadata.version(package))
        except importlib.metadata.PackageNotFoundError:
            want.append("-")
    assert installed(*packages) == want
    assert want[1] == "-" and want.count("-") == 1  # all of them installed here but the made-up one


def test_entries_of_sys_path_that_are_no_string_are_passed_over(monkeypatch, tmp_path):
    """A folder named by a Path is read, one named by bytes passed over (as import passes it over;
    importlib.metadata fails on it): a cache key never fails a scan."""
    (tmp_path / "madeup_pkg-1.2.dist-info").mkdir()
    (tmp_path / "bytes_pkg-3.4.dist-info").mkdir()
    msgspec = importlib.metadata.version("msgspec")  # asked before: it fails with bytes there
    monkeypatch.setattr(sys, "path", [str(tmp_path).encode(), tmp_path, *sys.path])
    assert installed("madeup-pkg", "msgspec") == ["1.2", msgspec]
    monkeypatch.setattr(sys, "path", [str(tmp_path).encode(), *sys.path[2:]])
    assert installed("bytes-pkg") == ["-"]
