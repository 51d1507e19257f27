"""Options that several lenprof commands take, each defined once (as sqlite-utils does), and a
help page in panels with worked examples at its end.

A command names its panels by parameter name, and its examples::

    @click.command("scan", cls=PanelCommand, panels={"Inputs": ["dataset_split", ...]},
                   examples=[("What it does:", "lenprof scan data/ ...")])

An option in no panel is listed under "Other options", so none is ever hidden. This is plain
click: rich-click restyles every error message as well, and ours must stay as they are; cloup's
option groups would be a dependency for what one formatter method does here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import click

from lenprof.cli.common import Coverage
from lenprof.report import FORMATS

COL_MAX = 24  # widest option column: the help keeps 50 of 80 columns; a longer option gets its own line


class PanelCommand(click.Command):
    """A click command whose ``--help`` lists options in titled panels, then examples."""

    def __init__(
        self,
        *args,
        panels: dict[str, list[str]] | None = None,
        examples: Sequence[tuple[str, str]] = (),
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.panels = panels or {}
        self.examples = list(examples)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        help_name = getattr(self.get_help_option(ctx), "name", None)  # "_click_default_help" in click 8.2+
        records = {
            "help" if p.name == help_name else p.name: _help_record(p, ctx)
            for p in self.get_params(ctx)
            if isinstance(p, click.Option)  # arguments are named in the usage line
        }
        records = {name: r for name, r in records.items() if r is not None}
        placed = {name for names in self.panels.values() for name in names}
        rest = "Other options" if self.panels else "Options"
        panels = {**self.panels, rest: [n for n in records if n not in placed]}
        width = min(max(len(term) for term, _ in records.values()), COL_MAX)  # one column for all panels
        for title, names in panels.items():
            rows = [records[n] for n in names if n in records]
            if rows:
                with formatter.section(title):
                    formatter.write_dl([(term.ljust(width), text) for term, text in rows], col_max=COL_MAX)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Examples as written: a command line is never rewrapped."""
        if self.examples:
            with formatter.section("Examples"):
                for i, (what, command) in enumerate(self.examples):
                    if i:
                        formatter.write_paragraph()
                    formatter.write_text(what)
                    with formatter.indentation():
                        for line in command.splitlines():
                            formatter.write(f"{'':>{formatter.current_indent}}{line}\n")
        super().format_epilog(ctx, formatter)


def _help_record(param: click.Option, ctx: click.Context) -> tuple[str, str] | None:
    """click's help record, its variable written ``[env: LENPROF_X; default: 8; x>=1]`` as the
    options that describe their own variable write it (click writes ``env var:``)."""
    record = param.get_help_record(ctx)
    if record is None:
        return None
    term, text = record
    head, found, tail = text.rpartition("[env var: ")
    return term, f"{head}[env: {tail}" if found else text


def into(cls: type) -> Callable[[Callable], Callable]:
    """Hand a command's parameters to its body as one typed object: ``body(args: cls)``, where
    ``cls`` is a dataclass whose fields are the parameters' names."""

    def decorate(body: Callable) -> Callable:
        @functools.wraps(body)
        def command(**params):
            return body(cls(**params))

        return command

    return decorate


def together(*decorators: Callable) -> Callable[[Callable], Callable]:
    """Several option decorators as one, listed in the order they appear in ``--help``."""

    def apply(f: Callable) -> Callable:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


class Repeatable(click.Option):
    """A repeatable option whose value from the environment or ``[tool.lenprof]`` is one item,
    spaces and all (click would split a variable at whitespace)."""

    def value_from_envvar(self, ctx: click.Context):
        value = self.resolve_envvar_value(ctx)
        return None if value is None else (value,)

    def type_cast_value(self, ctx: click.Context, value):
        return super().type_cast_value(ctx, (value,) if isinstance(value, str) else value)


# --- the options themselves: a name in [tool.lenprof] means the same in every command ------------

tokenizer = click.option(
    "--tokenizer",
    cls=Repeatable,
    multiple=True,
    envvar="LENPROF_TOKENIZER",
    help="Hub id, model folder or tokenizer.json [env: LENPROF_TOKENIZER; default: the packaged all-MiniLM-L6-v2]. "
    "Give it again to compare tokenizers in one pass.",
)


def for_tokenizer(when: str) -> Callable:
    """``--for-tokenizer``; ``when`` says when it applies (several ``--tokenizer``, a comparison)."""
    return click.option(
        "--for-tokenizer",
        metavar="NAME",
        help=f"{when}: whose lengths --format args, yaml, env, st and markdown print.",
    )


# The texts as the trainer sees them: the same four options in scan and train.
instructions = together(
    click.option(
        "--query-instruction",
        metavar="TEXT",
        help="Prepended to every query, as FlagEmbedding's query_instruction_for_retrieval (a row's own 'prompt' replaces it).",
    ),
    click.option(
        "--query-instruction-format",
        default="{}{}",
        show_default=True,
        help="How instruction and query are joined.",
    ),
    click.option(
        "--passage-instruction",
        metavar="TEXT",
        help="Prepended to every passage (passage_instruction_for_retrieval).",
    ),
    click.option(
        "--passage-instruction-format",
        default="{}{}",
        show_default=True,
        help="How instruction and passage are joined.",
    ),
)


def coverage(default: float | None, help: str) -> Callable:
    """``--coverage``: a percentage that a float keeps exactly (see :class:`Coverage`)."""
    return click.option(
        "--coverage",
        type=Coverage(),
        default=default,
        show_default=default is not None,
        metavar="PERCENT",
        help=help,
    )


def multiple_of(default: int | None, help: str) -> Callable:
    return click.option(
        "--multiple-of",
        type=click.IntRange(min=1),
        metavar="N",
        default=default,
        show_default=default is not None,
        help=help,
    )


def min_neg(help: str) -> Callable:
    return click.option(
        "--min-neg", type=click.IntRange(min=0), default=1, show_default=True, metavar="N", help=help
    )


def output_format(choices: Sequence[str] = tuple(FORMATS), help: str = "What stdout carries.") -> Callable:
    """``--format``: what stdout carries (each command has its own choices)."""
    return click.option(
        "--format", "fmt", type=click.Choice(list(choices)), default="table", show_default=True, help=help
    )


def report(help: str) -> Callable:
    return click.option("--report", type=click.Path(dir_okay=False), help=help)


quiet = click.option("--quiet", "-q", is_flag=True, help="No progress or log lines on stderr.")
