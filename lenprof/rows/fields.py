"""Which keys hold the query, the positives and the negatives.

FlagEmbedding rows are ``{"query": str, "pos": [str], "neg": [str], ...}``. Other layouts, such
as sentence-transformers' ``anchor``/``positive``/``negative`` columns, are read through a
mapping; a mapped column may hold a plain string, which counts as a one-item list. Unmapped
``pos``/``neg`` must be lists: FlagEmbedding would silently sample characters from a string.
Negatives may also come from several columns, one text each (sentence-transformers' n-tuples,
``negative_1`` ... ``negative_n``): ``neg=negative_1+negative_2`` names them, ``neg=negative_*``
takes every ``negative_<n>`` column of the input in numeric order (see ``layouts.py``).
CSV cannot hold lists, so in a CSV row every column may hold a string (``strings``).

    >>> f = Fields.parse("query=anchor,pos=positive")
    >>> f.query, f.pos, f.neg, f.lenient("positive")
    ('anchor', 'positive', 'neg', True)
    >>> Fields.parse("query=anchor,pos=positive,neg=negative_1+negative_2").neg_columns
    ('negative_1', 'negative_2')
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("query", "pos", "neg")


class FieldsError(ValueError):
    pass


@dataclass(frozen=True)
class Fields:
    query: str = "query"
    pos: str = "pos"
    neg: str = "neg"
    mapped: frozenset[str] = frozenset()  # column names given by the user
    strings: bool = False  # every column may hold a plain string (CSV rows: no cell is a list)

    @classmethod
    def parse(cls, spec: str | None) -> Fields:
        if not spec:
            return cls()
        names: dict[str, str] = {}
        for part in spec.split(","):
            role, sep, column = (s.strip() for s in part.partition("="))
            if not sep or role not in ROLES or not column or "=" in column:
                raise FieldsError(
                    f"--fields: cannot read {part.strip()!r}; expected ROLE=COLUMN with ROLE one of "
                    f"{', '.join(ROLES)}, e.g. query=anchor,pos=positive,neg=negative"
                )
            if role in names:
                raise FieldsError(f"--fields: {role} is given twice")
            names[role] = column
        if any(not c for c in names.get("neg", "x").split("+")):
            raise FieldsError("--fields: neg=A+B names several columns; none may be empty")
        if len(set(names.values())) < len(names):
            raise FieldsError("--fields: two roles name the same column")
        columns = set(names.values()) | set(names.get("neg", "").split("+"))
        return cls(**names, mapped=frozenset(columns - {""}))

    def lenient(self, column: str) -> bool:
        return self.strings or column in self.mapped

    @property
    def neg_columns(self) -> tuple[str, ...]:
        """The columns of an n-tuple's negatives (one text each), or () for one ``neg`` column."""
        return tuple(self.neg.split("+")) if "+" in self.neg else ()

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column these fields read."""
        return (self.query, self.pos, *(self.neg_columns or (self.neg,)))

    def spec(self) -> str:
        """As ``--fields`` takes it."""
        neg = f",neg={self.neg}" if self.neg != "neg" or self.neg in self.mapped else ""
        return f"query={self.query},pos={self.pos}{neg}"
