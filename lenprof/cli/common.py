"""What every lenprof command shares: how a library error becomes exit 2 and one line, and how
text reaches stdout and stderr (stdout carries data only; logs go to stderr)."""

from __future__ import annotations

import contextlib
import sys

import click

from ..inputs import InputError
from ..options import OptionsError
from ..profile import ProfileError
from ..recommend import NothingToRecommend
from ..schema import FieldsError
from ..tokenize import TokenizerError
from .config import with_source

# What the library raises for an input, output or option that cannot work: exit 2, one line.
USAGE_ERRORS = (InputError, TokenizerError, FieldsError, OptionsError, ProfileError, NothingToRecommend)


class UsageProblem(click.ClickException):
    """A message for the user, exit code 2 (bad flags, unreadable inputs, unknown tokenizer)."""

    exit_code = 2


@contextlib.contextmanager
def usage_errors():
    """Library errors become exit 2 and one line, which names where a value came from when the
    user did not type it (an environment variable, a pyproject.toml key)."""
    try:
        yield
    except USAGE_ERRORS as exc:
        raise UsageProblem(with_source(str(exc))) from exc
    except UsageProblem as exc:
        raise UsageProblem(with_source(exc.message)) from exc


def emit(text: str) -> None:
    """Write to stdout; a lone surrogate (from a damaged profile, say) goes out as its escape."""
    sys.stdout.buffer.write(text.encode("utf-8", "backslashreplace"))
    sys.stdout.flush()


def log(quiet: bool, message: str) -> None:
    if not quiet:
        click.echo(f"lenprof: {message}", err=True)
