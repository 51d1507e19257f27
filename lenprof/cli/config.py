"""Defaults from the project: ``[tool.lenprof]`` in the nearest ``pyproject.toml``.

Precedence, highest first (as in ruff): command-line flags, ``LENPROF_*`` environment variables
(``--multiple-of`` reads ``LENPROF_MULTIPLE_OF``), ``[tool.lenprof]``, built-in defaults.

    [tool.lenprof]
    tokenizer = "BAAI/bge-base-en-v1.5"
    coverage = 99
    multiple-of = 16
    query-instruction = "Represent this sentence for searching relevant passages: "
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


# Where a run writes is decided per run, never by a default.
PER_RUN = {"help", "out", "clean-out", "rejects", "report", "split-dir"}


def find_pyproject(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def option_key(param: click.Parameter) -> str:
    """The name a user writes: the long flag without dashes (``--multiple-of`` -> ``multiple-of``)."""
    long = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    return long[0][2:] if long else param.name  # type: ignore[return-value]


def set_envvars(command: click.Command) -> None:
    """Every option of ``command`` reads ``LENPROF_<FLAG>`` unless it names its own variable."""
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar is None and option_key(param) not in PER_RUN:
            param.envvar = "LENPROF_" + option_key(param).upper().replace("-", "_")
            param.show_envvar = True


def default_map(commands: dict[str, click.Command], start: Path | None = None) -> dict[str, dict]:
    """``[tool.lenprof]`` as click's default_map for each command that has such options."""
    path = find_pyproject(start or Path.cwd())
    if path is None:
        return {}
    try:
        section = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("lenprof", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise click.ClickException(f"{path}: cannot read [tool.lenprof] ({exc})") from exc
    if not section:
        return {}
    known: dict[str, dict[str, str]] = {
        name: {
            option_key(p).replace("_", "-"): p.name  # type: ignore[misc]
            for p in cmd.params
            if isinstance(p, click.Option) and option_key(p) not in PER_RUN
        }
        for name, cmd in commands.items()
    }
    everything = {k for keys in known.values() for k in keys}
    unknown = sorted(k for k in section if k.replace("_", "-") not in everything)
    if unknown:
        raise click.UsageError(
            f"{path}: [tool.lenprof] has unknown keys {', '.join(unknown)}; known keys: {', '.join(sorted(everything))}"
        )
    return {
        name: {keys[k.replace("_", "-")]: v for k, v in section.items() if k.replace("_", "-") in keys}
        for name, keys in known.items()
    }
