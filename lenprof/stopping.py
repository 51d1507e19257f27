"""How the command line stops on a signal: Ctrl-C exits 130, a signal whose default would end
the process (SIGTERM, SIGHUP, ...) 128 + its number, as a shell reports them, each after every
cleanup ran (temporary files removed, workers stopped) and with one line saying so.

A module of its own, with nothing heavy to import, so that the console script takes the signals
before it imports the commands (a few hundred milliseconds): a Ctrl-C then never shows an
import's traceback.
"""

from __future__ import annotations

import contextlib
import signal
import sys


class Terminated(BaseException):
    """A signal that ends the process, raised where the main thread is, so that every cleanup
    runs (temporary files removed, workers stopped)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# The signals whose default action ends the process, each handled as SIGTERM. Only those still at
# their default are taken: one a caller ignores (nohup's SIGHUP) or handles (a profiler's
# SIGPROF) stays so. SIGPIPE stays ignored, as Python sets it: a closed stdout is an error on write.
STOPPING = (
    "SIGTERM",
    "SIGHUP",
    "SIGQUIT",
    "SIGUSR1",
    "SIGUSR2",
    "SIGALRM",
    "SIGXCPU",
    "SIGVTALRM",
    "SIGPROF",
)

# The signal that asked this process to stop, once one has. An exception raised by a signal's
# handler can come out of C code as another error: numpy's file functions took it for a yes to
# "is this a path?" and raised TypeError. Whatever surfaces after a stop was asked is that stop.
stop_asked: list[int] = []


def _interrupt(signum, frame) -> None:
    stop_asked.append(signum)
    raise KeyboardInterrupt


def _terminate(signum, frame) -> None:
    stop_asked.append(signum)
    for name in STOPPING:  # a second signal must not cut the cleanup the first one started
        with contextlib.suppress(AttributeError, ValueError, OSError):
            if signal.getsignal(getattr(signal, name)) is _terminate:
                signal.signal(getattr(signal, name), signal.SIG_IGN)
    raise Terminated(signum)


def handle_stopping_signals() -> None:
    """Take SIGINT and the signals of ``STOPPING`` that are still at their default (again: no-op)."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where a caller ignores it
        signal.signal(signal.SIGINT, _interrupt)
    for name in STOPPING:
        signum = getattr(signal, name, None)  # not every platform has every signal
        if signum is not None and signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _terminate)


def asked(signum: int) -> BaseException:
    """The stop a signal asked for, where C code raised something else in its place."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def stopped(stop: BaseException, changed: str = "no output of this run was changed") -> int:
    """Say on stderr that ``stop`` (a KeyboardInterrupt or a ``Terminated``) ended the run, and
    what it changed; the exit code."""
    if isinstance(stop, Terminated):
        line, code = f"terminated by {signal.Signals(stop.signum).name}", 128 + stop.signum
    else:
        line, code = "interrupted", 130
    with contextlib.suppress(OSError, ValueError, AttributeError):  # stderr closed, or none
        print(f"lenprof: {line}; {changed}", file=sys.stderr, flush=True)
    return code
