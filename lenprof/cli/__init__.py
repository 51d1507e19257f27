"""The ``lenprof`` command line: parse options, make one library call, render, exit.

Exit codes follow ruff's convention: 0 the command completed, 1 findings when asked to fail on
them (``--fail-on-drop``, ``diagnose`` finding trouble, a training run the watchdog stopped),
2 usage errors and unusable inputs or outputs, each with one line saying what to do. Ctrl-C
exits 130, and a signal that would end the process (SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, ...)
128 + its number, as a shell reports it, after the workers are stopped and temporary files
removed. A stdout closed early (``| head -1``) is 141, as a shell reports SIGPIPE: output was
lost, so never 0. No traceback reaches a user; ``LENPROF_DEBUG=1`` shows one for an internal error.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys

import click

from lenprof.cli.common import StdoutClosed, UsageProblem
from lenprof.cli.config import SOURCES, blame, check_values, load, set_envvars
from lenprof.cli.diagnose import diagnose_command
from lenprof.cli.recommend import recommend_command
from lenprof.cli.scan import scan_command
from lenprof.cli.train import train_command
from lenprof.engine.pool import WorkerFailed
from lenprof.stopping import Terminated, asked, handle_stopping_signals, stop_asked, stopped
from lenprof.version import __version__

# transformers (the [transformers] extra, imported only to build a model folder's tokenizer) warns on
# import that torch is absent; a length profile never needs torch.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


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


def _stdout_closed() -> int:
    """stdout's reader went away: say so once (stderr may be gone too) and exit as a shell
    reports SIGPIPE. What is still buffered for stdout goes nowhere, without a second error."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    with contextlib.suppress(OSError, ValueError):
        click.echo(
            "lenprof: stdout was closed before all output was written to it; the output is cut short",
            err=True,
        )
    return 128 + signal.SIGPIPE


def _changed(stop: BaseException) -> str:
    """What an interrupted run changed: nothing, unless it came while objects in storage were
    uploaded one by one at the commit (see io/transaction.py), which names them."""
    causes = (stop, stop.__cause__, stop.__context__)  # click turns a KeyboardInterrupt into Abort
    replaced = next((r for e in causes if (r := getattr(e, "replaced", None))), [])
    if not replaced:
        return "no output of this run was changed"
    more = f" and {len(replaced) - 3} more" if len(replaced) > 3 else ""
    return f"outputs already replaced (objects are replaced one by one): {', '.join(replaced[:3])}{more}"


def entry() -> None:
    """The ``lenprof`` console script: ``main`` with signals and every error turned into an
    exit code and one line."""
    handle_stopping_signals()  # again where entry is called without lenprof.__main__'s (a no-op there)
    if sys.argv[1:2] == ["train"]:  # LENPROF_HOST_MEMORY=lean: see train/host_memory.py
        from lenprof.train.host_memory import relaunch

        relaunch([sys.executable, "-m", "lenprof", *sys.argv[1:]])
    try:
        try:
            code = main.main(standalone_mode=False)
        except Exception as exc:
            if stop_asked and not isinstance(exc, click.exceptions.Abort):
                raise asked(stop_asked[0]) from exc
            raise
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort, Terminated) as exc:
        code = stopped(exc if isinstance(exc, Terminated) else KeyboardInterrupt(), _changed(exc))
    except (StdoutClosed, BrokenPipeError):  # BrokenPipeError: a write to stdout outside emit
        code = _stdout_closed()
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
    # The command is over, its outputs closed: what it leaves needs no collecting before the OS
    # frees it. Python's exit collects every object it still tracks first (30 of the 40 ms a
    # scan's exit took); frozen, they are only freed. atexit and weakref finalizers still run.
    gc.freeze()
    sys.exit(code if isinstance(code, int) else 0)
