"""Rendering a profile, and nothing else: every number was computed by the scan.

``text.py`` renders what goes to stdout or a config file (``FORMATS``); ``html.py`` renders the
self-contained HTML report.
"""

from __future__ import annotations

from lenprof.report.text import (
    render_args,
    render_env,
    render_json,
    render_markdown,
    render_st,
    render_table,
    render_yaml,
)

FORMATS = {
    "table": render_table,
    "json": render_json,
    "args": render_args,
    "yaml": render_yaml,
    "env": render_env,
    "st": render_st,
    "markdown": render_markdown,
}
