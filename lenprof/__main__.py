"""``python -m lenprof`` and the ``lenprof`` console script: the stopping signals are taken
first (``lenprof.stopping``), then the commands are imported and run (``lenprof.cli``). Taken
after the imports, a Ctrl-C in a scan's first few hundred milliseconds showed an import's
traceback, and a SIGTERM ended it silently."""

from __future__ import annotations

import sys

from lenprof.stopping import Terminated, asked, handle_stopping_signals, stop_asked, stopped


def entry() -> None:
    handle_stopping_signals()
    try:
        from lenprof.cli import entry as run
    except (KeyboardInterrupt, Terminated) as stop:  # nothing has started: nothing to clean up
        sys.exit(stopped(stop))
    except BaseException:
        if stop_asked:  # a stop that an import's C code raised as something else
            sys.exit(stopped(asked(stop_asked[0])))
        raise
    run()


if __name__ == "__main__":
    entry()
