"""``--help``: scan's options in panels with examples at the end; every train option explained."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from lenprof.cli import main
from lenprof.cli.train import train_command

SCAN_PANELS = {
    "Inputs": ["--split", "--fields"],
    "Outputs": ["--format", "--out", "--clean-out", "--clean-format", "--rejects", "--report",
                "--split-by-length", "--split-dir", "--token-budget"],
    "Tokenizer": ["--tokenizer", "--for-tokenizer", "--query-instruction", "--query-instruction-format",
                  "--passage-instruction", "--passage-instruction-format"],
    "Lengths": ["--coverage", "--multiple-of"],
    "Checks": ["--min-neg", "--train-group-size", "--max-line-bytes", "--max-text-chars", "--against",
               "--drop-leaks", "--fail-on-drop"],
    "Model": ["--model", "--fn-ratio", "--dup-cosine", "--temperature", "--drop-false-negatives", "--add-scores",
              "--batch-size", "--device", "--embedding-cache"],
    "Engine": ["--workers", "--engine", "--address", "--shard-size", "--memory-budget", "--exact-only"],
    "Logging": ["--quiet", "--progress-interval", "--help"],
}  # fmt: skip


def help_of(command: str) -> str:
    result = CliRunner().invoke(main, [command, "--help"], catch_exceptions=False)
    assert result.exit_code == 0 and result.stderr == ""
    return result.stdout


def sections(text: str) -> dict[str, list[str]]:
    """Each section title ("Inputs:" alone on its line) -> the long flags listed under it."""
    found: dict[str, list[str]] = {}
    title = None
    for line in text.splitlines():
        if re.fullmatch(r"[A-Z][\w ]*:", line):
            title = line[:-1]
            found[title] = []
        elif title and (m := re.match(r"  (?:-\w, )?(--[\w-]+)", line)):
            found[title].append(m.group(1))
    return found


def test_scan_help_has_each_panel_with_its_options_in_order():
    found = sections(help_of("scan"))
    assert list(found) == [*SCAN_PANELS, "Examples"]
    assert {title: flags for title, flags in found.items() if title != "Examples"} == SCAN_PANELS


def test_every_scan_option_is_in_a_panel():
    command = main.commands["scan"]
    flags = {
        o for p in command.get_params(click.Context(command)) if isinstance(p, click.Option) for o in p.opts
    }
    listed = {f for fs in SCAN_PANELS.values() for f in fs}
    assert {f for f in flags if f.startswith("--")} == listed


def test_scan_help_ends_with_two_examples_never_rewrapped():
    text = help_of("scan")
    examples = text[text.index("\nExamples:\n") :]
    assert (
        "    lenprof scan data/ --clean-out clean/ --rejects rejects.jsonl --out profile.json\n" in examples
    )
    assert (
        "    torchrun --nproc_per_node 8 -m FlagEmbedding.finetune.embedder.encoder_only.base \\\n"
        in examples
    )
    assert "$(lenprof scan clean/ --tokenizer BAAI/bge-base-en-v1.5 --format args -q) ..." in examples
    assert text.endswith("--format args -q) ...\n")


def test_help_names_each_options_variable_and_default():
    text = " ".join(help_of("scan").split())
    assert "[env: LENPROF_MULTIPLE_OF; default: 8; x>=1]" in text
    assert "env var:" not in text


@pytest.mark.parametrize("command", ["recommend", "diagnose"])
def test_other_commands_list_their_options_under_one_panel(command):
    assert list(sections(help_of(command))) == ["Options"]


def test_every_train_option_has_help_with_its_default_and_range():
    ctx = click.Context(train_command)
    for param in train_command.get_params(ctx):
        if not isinstance(param, click.Option):
            continue
        flag, text = param.get_help_record(ctx)  # type: ignore[misc]
        assert param.help, f"{flag} has no help"
        if not param.is_flag and param.name not in ("query_instruction", "passage_instruction"):
            assert re.search(r"default: |; required]", text), f"{flag} does not say what it defaults to"
        if isinstance(param.type, click.types._NumberRangeBase):
            assert re.search(r"x[<>]|<=?x", text), f"{flag} does not show its range"
    options = [p for p in train_command.get_params(ctx) if isinstance(p, click.Option)]
    listed = [flag for flags in sections(help_of("train")).values() for flag in flags]
    assert len(listed) == len(set(listed)) == len(options)  # each option in one panel


def test_the_learning_rate_help_says_where_to_start_and_what_to_do_on_collapse():
    (option,) = [p for p in train_command.params if p.name == "learning_rate"]
    text = " ".join((option.help or "").split())
    assert "1e-5 to 1e-6" in text and "warmup" in text and "gradient clipping" in text
    assert "collapse" in text and "halve it (1e-5 -> 5e-6)" in text
    assert "--learning-rate LR" in help_of("train")
