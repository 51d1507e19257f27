"""Where a scan runs: ``local`` (this machine, the default, in lenprof.scan) or ``ray`` (a cluster)."""

ENGINES = ("local", "ray")
