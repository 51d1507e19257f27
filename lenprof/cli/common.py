"""What every lenprof command shares: how a library error becomes exit 2 and one line, and how
text reaches stdout and stderr (stdout carries data only; logs go to stderr)."""

from __future__ import annotations

import contextlib
import math
import sys
from decimal import Decimal, InvalidOperation

import click

from lenprof.cli.config import with_source
from lenprof.count.tokenizer import TokenizerError
from lenprof.errors import InputError
from lenprof.rows.fields import FieldsError
from lenprof.rows.options import OptionsError
from lenprof.stats.profile_json import ProfileError
from lenprof.stats.recommend import NothingToRecommend

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


class Finite(click.FloatRange):
    """click's FloatRange, without nan and inf: both pass its comparisons and then break the
    arithmetic they reach (``int(inf)``), far from the flag that gave them."""

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(
                f"{value!r} is not a finite number; give one in the range {self._describe_range()}",
                param,
                ctx,
            )
        return rv


class ByteSize(click.ParamType):
    """A size in bytes: a number with an optional unit, K/M/G/T (powers of 1024, as ``KiB``,
    ``MiB``... and ``KB``, ``MB``... are read too); a bare number is MiB, also from a
    ``pyproject.toml`` (``memory-budget = 512``).

        >>> [ByteSize().convert(v, None, None) for v in ("300M", "2GiB", "1.5g", "64", 64)]
        [314572800, 2147483648, 1610612736, 67108864, 67108864]
    """

    name = "size"
    UNITS = {"": 1 << 20, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

    def __init__(self, least: int = 1):
        self.least = least

    def convert(self, value, param, ctx):
        text = str(value).strip().lower().removesuffix("ib").removesuffix("b")
        number, unit = text.rstrip("kmgt"), text[len(text.rstrip("kmgt")) :]
        try:
            size = float(number) * self.UNITS[unit]
        except (ValueError, KeyError):
            size = math.nan
        if not math.isfinite(size) or size < 1:
            self.fail(f"{value!r} is not a size; give one such as 512M, 2G or 300MiB", param, ctx)
        if size < self.least:
            self.fail(f"{value!r} is below the least it can be, {self.least >> 20} MiB", param, ctx)
        return int(size)


class Coverage(click.types.FloatParamType):
    """A coverage in percent: a decimal number with 0 < coverage <= 100 that a 64-bit float
    keeps exactly (every number of up to 15 significant digits does: 95, 99.9, 97.33333333333333,
    1e-13). The profile stores it as a JSON number and percentiles read it back as the decimal it
    was written as, so a number with more digits than a float holds would mean one thing in the
    scan and another in a later ``recommend``: it is refused, not rounded in silence."""

    name = "coverage"

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            value = repr(value)  # from pyproject.toml: the float is the value
        text = str(value).strip()
        try:
            exact = Decimal(text)
        except InvalidOperation:
            self.fail(
                f"{value!r} is not a number; give a percentage in the range 0<x<=100, e.g. 95 or 99.9",
                param,
                ctx,
            )
        if not exact.is_finite() or not 0 < exact <= 100:
            self.fail(f"{float(exact)} is not in the range 0<x<=100.", param, ctx)  # as click's FloatRange
        stored = float(exact)
        if Decimal(repr(stored)) != exact:  # also a number a float cannot hold at all, as 1e-400
            self.fail(
                f"{text} cannot be stored exactly in the profile (a 64-bit float); "
                "give at most 15 significant digits, as in 99.9 or 97.3333333333333",
                param,
                ctx,
            )
        return stored


class StdoutClosed(Exception):
    """stdout was closed before all of it was written (``lenprof ... | head -1``)."""


def emit(text: str) -> None:
    """Write to stdout; a lone surrogate (from a damaged profile, say) goes out as its escape."""
    rest = memoryview(text.encode("utf-8", "backslashreplace"))
    try:
        # A reader that goes mid-write makes write() return short, with no error: the next
        # write says EPIPE. So write until all is out, as a short count is no success.
        while rest:
            written = sys.stdout.buffer.write(rest)
            if not written:
                raise BrokenPipeError("stdout takes no more")
            rest = rest[written:]
        sys.stdout.flush()
    except BrokenPipeError as exc:  # click would swallow it and exit 0, as if all was read
        raise StdoutClosed() from exc


def log(quiet: bool, message: str) -> None:
    if not quiet:
        click.echo(f"lenprof: {message}", err=True)
