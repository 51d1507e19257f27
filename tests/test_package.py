"""The package's public names: each one there, imported only when asked for."""

from __future__ import annotations

import importlib
import subprocess
import sys

import lenprof


def test_every_public_name_is_the_object_its_module_defines():
    for name in lenprof.__all__:
        value = getattr(lenprof, name)
        if name != "__version__":
            assert value is getattr(importlib.import_module(lenprof._EXPORTS[name]), name)
    assert set(lenprof.__all__) == set(lenprof._EXPORTS) | {"__version__"}
    assert set(lenprof.__all__) <= set(dir(lenprof))


def test_importing_the_package_or_the_entry_point_loads_none_of_the_work():
    # the console script takes the signals before anything heavy is imported (lenprof.__main__)
    script = "import sys, lenprof.__main__; print(sorted(m for m in ('numpy', 'lenprof.api', 'lenprof.cli', 'click') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
