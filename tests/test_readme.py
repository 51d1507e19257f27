"""The README's sample outputs stay true: the quick start's, exactly as `make demo` prints it, and
the lines the FlagEmbedding section shows, with the lengths its torchrun command is handed.

Every README command also runs, like every docs/ page's: tests/test_docs.py.
"""

from __future__ import annotations

import re

from conftest import REPO
from test_docs import fenced_blocks, lenprof_commands, run_lenprof

README = (REPO / "README.md").read_text(encoding="utf-8")


def section(heading: str) -> str:
    """The README's text under `## heading`, up to the next `## `."""
    return re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", README, flags=re.S | re.M).group(1)


def shown_in_order(shown: str, printed: str) -> bool:
    """Each run of shown lines between `...` lines is a run of printed lines, the runs in order."""
    lines, start = printed.splitlines(), 0
    for run in re.split(r"^\.\.\.\n", shown, flags=re.M):
        run = run.splitlines()
        at = next(
            (i for i in range(start, len(lines) - len(run) + 1) if lines[i : i + len(run)] == run), None
        )
        if at is None:
            return False
        start = at + len(run)
    return True


def test_quick_start_output_is_what_make_demo_prints(scratch):
    demo = re.search(r"`make demo` runs `(lenprof scan [^`]*)`", README).group(1)
    makefile = (REPO / "Makefile").read_text()
    assert demo.replace("lenprof", "$(BIN)/lenprof", 1) in makefile
    shown = re.search(r"`make demo` runs .*?```\n(.*?)```", README, flags=re.S).group(1)
    result = run_lenprof(demo)
    assert result.exit_code == 0
    assert result.stdout == shown


def test_the_flagembedding_section_shows_what_the_scan_prints(scratch):
    text = section("From your dataset to your FlagEmbedding run")
    (scan, lengths), (shown,) = lenprof_commands(text), [b for lang, b in fenced_blocks(text) if not lang]
    assert "warnings  partial_prompt" in shown  # the section is there to show a warning
    result = run_lenprof(scan)
    assert result.exit_code == 0 and shown_in_order(shown, result.stdout), result.stdout
    # torchrun is handed the lengths the table recommended
    recommended = dict(re.findall(r"^  --(\w+_max_len) (\d+) ", shown, flags=re.M))
    expected = "--query_max_len {query_max_len} --passage_max_len {passage_max_len}\n".format(**recommended)
    assert run_lenprof(lengths).stdout == expected


def flag(name: str, command: str) -> str:
    found = re.search(rf"{name} (\S+)", command)
    assert found, f"no {name} in {command}"
    return found.group(1)


def test_the_flagembedding_recipe_scans_once_and_trains_on_what_it_wrote():
    """Issue 22, point 9: the recipe scanned twice (examples/, then clean/ for --format args).
    One scan writes the cleaned folder and the profile; torchrun reads both (the test above runs
    them: the lengths are the table's)."""
    text = section("From your dataset to your FlagEmbedding run")
    scan, lengths = lenprof_commands(text)  # no second scan
    (torchrun,) = [b for lang, b in fenced_blocks(text) if lang == "bash" and "torchrun" in b]
    assert scan.startswith("lenprof scan ")
    assert lengths == f"lenprof recommend {flag('--out', scan)} --format args"
    assert f"$({lengths})" in torchrun
    assert flag("--train_data", torchrun) == flag("--clean-out", scan)
