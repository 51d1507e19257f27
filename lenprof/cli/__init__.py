"""The ``lenprof`` command line: parse options, make one library call, render, exit.

Exit codes follow ruff's convention: 0 the command completed, 1 findings when asked to fail on
them (``--fail-on-drop``, ``diagnose`` finding trouble, a training run the watchdog stopped),
2 usage errors and unusable inputs or outputs, each with one line saying what to do. Ctrl-C
exits 130 and SIGTERM 143, after the workers are stopped and temporary files removed. No
traceback reaches a user; ``LENPROF_DEBUG=1`` shows one for an internal error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

import click

from ..engines.pool import WorkerFailed
from ..version import __version__
from .common import UsageProblem
from .config import SOURCES, blame, check_values, load, set_envvars
from .diagnose import diagnose_command
from .recommend import recommend_command
from .scan import scan_command
from .train import train_command

# transformers warns on import that torch is absent; a length profile never needs torch.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


class Terminated(BaseException):
    """SIGTERM, raised where the main thread is, so that every cleanup runs."""


class LenprofGroup(click.Group):
    """click's group, but "Invalid value for ..." names the source of the value: the flag, the
    environment variable or the pyproject.toml key, not the flag and its variable at once."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.BadParameter as exc:  # a subcommand's option: name where its value came from
            blame(exc)
            raise


@click.group(cls=LenprofGroup)
@click.version_option(__version__, prog_name="lenprof")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Token-length profiles, data checks and cleaned data for embedding fine-tuning.

    Defaults come from [tool.lenprof.COMMAND], then [tool.lenprof], in the nearest
    pyproject.toml, then LENPROF_* environment variables, then flags (highest).
    """
    try:
        config = load(main.commands)
        if ctx.invoked_subcommand in main.commands:
            check_values(main.commands[ctx.invoked_subcommand], config, ctx.invoked_subcommand)
    except click.ClickException as exc:
        raise UsageProblem(exc.format_message()) from exc
    ctx.default_map = config.defaults
    ctx.meta[SOURCES] = config.sources


for _command in (scan_command, recommend_command, diagnose_command, train_command):
    main.add_command(_command)
    set_envvars(_command)


def _terminate(signum, frame) -> None:
    raise Terminated()


def entry() -> None:
    """The ``lenprof`` console script: ``main`` with signals and every error turned into an
    exit code and one line."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = main.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("lenprof: interrupted; no output of this run was changed", err=True)
        code = 130
    except Terminated:
        click.echo("lenprof: terminated; no output of this run was changed", err=True)
        code = 143
    except BrokenPipeError:  # stdout closed early (lenprof ... | head): not an error
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        code = 0
    except WorkerFailed as exc:
        if os.environ.get("LENPROF_DEBUG"):
            raise
        click.echo(f"Error: {str(exc).splitlines()[0]} (LENPROF_DEBUG=1 shows the details)", err=True)
        code = 2
    except Exception as exc:
        if os.environ.get("LENPROF_DEBUG"):
            raise
        click.echo(
            f"Error: internal error: {type(exc).__name__}: {exc} (LENPROF_DEBUG=1 shows the traceback; please report it)",
            err=True,
        )
        code = 2
    sys.exit(code if isinstance(code, int) else 0)
