"""Defaults from the project: ``[tool.lenprof.<command>]`` and ``[tool.lenprof]`` in the nearest
``pyproject.toml``.

Precedence, highest first (as in ruff): command-line flags, ``LENPROF_*`` environment variables
(``--multiple-of`` reads ``LENPROF_MULTIPLE_OF``), the command's own table, ``[tool.lenprof]``,
built-in defaults.

    [tool.lenprof]                # keys that mean the same in every command that has them
    tokenizer = "BAAI/bge-base-en-v1.5"
    query-instruction = "Represent this sentence for searching relevant passages: "

    [tool.lenprof.scan]
    coverage = 99
    format = "args"

    [tool.lenprof.train]
    batch-size = 32

A key that two commands share with two meanings (``format``: what stdout carries, with other
choices per command; ``batch-size``: a run's batch size in ``diagnose``, the batch to train with
in ``train``) is refused in ``[tool.lenprof]``: one value there would be applied to both. Every
error names the file, the table and the key, so nothing is blamed on a flag or a variable the
user never set.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


# Where a run writes is decided per run, never by a default.
PER_RUN = {"help", "out", "clean-out", "rejects", "report", "split-dir"}
# Keys that more than one command has, with one meaning: these may stay in [tool.lenprof].
# Any other key two commands share belongs in the command's table; a new option whose name
# another command already uses is refused there until it is added here.
SAME_EVERYWHERE = {
    "tokenizer",
    "coverage",
    "multiple-of",
    "query-instruction",
    "query-instruction-format",
    "passage-instruction",
    "passage-instruction-format",
    "train-group-size",
    "quiet",
    "model",  # the base model: scanned with (scan --model) and fine-tuned (train)
    "temperature",  # the trainer's
}


@dataclass
class Config:
    """click's default_map per command, and where each value was set (for error messages)."""

    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, dict[str, str]] = field(default_factory=dict)  # command -> param -> "FILE [table] key"


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


def settable(command: click.Command) -> dict[str, click.Option]:
    """The keys a table may set for ``command``, each with its option."""
    return {
        option_key(p): p
        for p in command.params
        if isinstance(p, click.Option) and option_key(p) not in PER_RUN
    }


def load(commands: dict[str, click.Command], start: Path | None = None) -> Config:
    """Read ``[tool.lenprof]`` and its command tables; refuse what cannot be meant (an unknown
    key or table, a shared key with two meanings). Values are checked later, per command."""
    path = find_pyproject(start or Path.cwd())
    if path is None:
        return Config()
    try:
        section = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("lenprof", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise click.ClickException(f"{path}: cannot read [tool.lenprof] ({exc})") from exc
    known = {name: settable(cmd) for name, cmd in commands.items()}
    tables = {k: v for k, v in section.items() if isinstance(v, dict)}
    shared = {_norm(k): v for k, v in section.items() if not isinstance(v, dict)}
    _refuse_unknown_tables(path, tables, known)
    _refuse_in_shared(path, shared, known)
    config = Config()
    for name, keys in known.items():
        table = {_norm(k): v for k, v in tables.get(name, {}).items()}
        unknown = sorted(k for k in table if k not in keys)
        if unknown:
            raise click.UsageError(
                f"{path}: [tool.lenprof.{name}] has unknown keys {', '.join(unknown)}; "
                f"known keys: {', '.join(sorted(keys))}"
            )
        values = {k: (v, f"{path} [tool.lenprof] {k}") for k, v in shared.items() if k in keys}
        values.update({k: (v, f"{path} [tool.lenprof.{name}] {k}") for k, v in table.items()})
        config.defaults[name] = {keys[k].name: v for k, (v, _) in values.items()}  # type: ignore[misc]
        config.sources[name] = {keys[k].name: where for k, (_, where) in values.items()}  # type: ignore[misc]
    return config


def _norm(key: str) -> str:
    return key.replace("_", "-")


def _refuse_unknown_tables(path: Path, tables: dict, known: dict) -> None:
    strange = sorted(t for t in tables if t not in known)
    if strange:
        raise click.UsageError(
            f"{path}: [tool.lenprof.{strange[0]}] is not a lenprof command; "
            f"tables: {', '.join(f'[tool.lenprof.{n}]' for n in sorted(known))}"
        )


def _refuse_in_shared(path: Path, shared: dict, known: dict) -> None:
    users = {k: sorted(n for n, keys in known.items() if k in keys) for k in shared}
    allowed = {k for keys in known.values() for k in keys if _is_shareable(k, known)}
    unknown = sorted(k for k, names in users.items() if not names)
    if unknown:
        raise click.UsageError(
            f"{path}: [tool.lenprof] has unknown keys {', '.join(unknown)}; known keys: {', '.join(sorted(allowed))}"
        )
    for key, names in sorted(users.items()):
        if not _is_shareable(key, known):
            raise click.UsageError(
                f"{path}: [tool.lenprof] {key} means different things in {_either(names, 'and')}; "
                f"move it into {_either([f'[tool.lenprof.{n}]' for n in names], 'or')}"
            )


def _either(words: list[str], conjunction: str) -> str:
    """['a', 'b', 'c'] -> 'a, b or c'"""
    return f"{', '.join(words[:-1])} {conjunction} {words[-1]}" if len(words) > 1 else words[0]


def _is_shareable(key: str, known: dict) -> bool:
    return key in SAME_EVERYWHERE or sum(key in keys for keys in known.values()) == 1


def check_values(command: click.Command, config: Config, name: str) -> None:
    """Convert each configured value of command ``name`` as click will, so that a bad one is
    reported against the file, table and key it came from, not against a flag."""
    ctx = click.Context(command, info_name=name)
    params = {p.name: p for p in command.params}
    for param_name, value in config.defaults.get(name, {}).items():
        param, where = params[param_name], config.sources[name][param_name]
        flag = f"--{option_key(param)}"
        problem = _kind_problem(param, value)
        if problem is None:
            try:
                param.type_cast_value(ctx, value)
            except click.BadParameter as exc:
                problem = exc.message.rstrip(".")
        if problem:
            raise click.UsageError(f"{where}: {problem} (fix it there, or override it with {flag})")


def _kind_problem(param: click.Parameter, value: Any) -> str | None:
    """TOML types click would turn into nonsense: a list or table for one value, a boolean for
    a number or text."""
    if isinstance(value, (list, dict)) and param.nargs == 1 and not getattr(param, "multiple", False):
        return f"expected one value, not {'a list' if isinstance(value, list) else 'a table'}"
    if isinstance(value, bool) and not isinstance(param.type, click.types.BoolParamType):
        return f"expected {_expected(param.type)}, not {str(value).lower()}"
    return None


def _expected(kind: click.ParamType) -> str:
    if isinstance(kind, click.Choice):
        return "one of " + ", ".join(map(str, kind.choices))
    if isinstance(kind, (click.types.IntParamType, click.types.FloatParamType)):
        return "a number"
    return "text"


# ctx.meta key under which the group leaves Config.sources for its subcommands.
SOURCES = "lenprof.config_sources"


def source_of(ctx: click.Context, param: click.Parameter) -> str | None:
    """Where a value the user did not type came from: ``LENPROF_X`` or ``FILE [table] key``;
    None for a flag on the command line (or a built-in default)."""
    source = ctx.get_parameter_source(param.name)  # type: ignore[arg-type]
    if source is click.core.ParameterSource.ENVIRONMENT:
        names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
        return next((n for n in names if os.environ.get(n)), names[0] if names else None)
    if source is click.core.ParameterSource.DEFAULT_MAP:
        return ctx.meta.get(SOURCES, {}).get(ctx.info_name, {}).get(param.name)
    return None


def blame(exc: click.BadParameter) -> None:
    """Make click's "Invalid value for ..." name the source of the value. click names the flag
    and its variable whatever the source: "'--coverage' (env var: 'LENPROF_COVERAGE')"."""
    ctx, param = exc.ctx, exc.param
    if exc.param_hint is not None or ctx is None or not isinstance(param, click.Option):
        return
    where = source_of(ctx, param)
    if where is None:
        exc.param_hint = " / ".join(f"'{o}'" for o in param.opts)
    elif where.startswith("LENPROF_") or where == param.envvar:
        exc.param_hint = f"environment variable {where}"
    else:
        exc.param_hint = where


def with_source(message: str) -> str:
    """A library message that names a flag (``--tokenizer X: ...``) or an option
    (``query_instruction_format ...``) whose value the user did not type gets where it came
    from appended: ``(set by LENPROF_TOKENIZER)``."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return message
    for param in ctx.command.params:
        if not isinstance(param, click.Option):
            continue
        # the flag, or a name like query_instruction_format (a plain word could be prose)
        named = (f"--{option_key(param)}", param.name if "_" in (param.name or "") else "")
        if any(n and re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", message) for n in named):
            where = source_of(ctx, param)
            if where:
                return f"{message} (set by {where})"
    return message
