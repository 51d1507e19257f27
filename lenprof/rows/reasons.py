"""Every reason a row is dropped, repaired or warned about, with the text that explains it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dropped:
    """A dropped row's reason (one of ``rows.reasons.DROP_REASONS``) and what was found."""

    reason: str
    detail: str


# Dropped rows, in the order the checks run.
DROP_REASONS: tuple[str, ...] = (
    "line_too_long",
    "invalid_utf8",
    "malformed_json",
    "malformed_csv",
    "not_object",
    "missing_field",
    "wrong_type",
    "text_too_long",
    "bad_scores",
    "empty_query",
    "empty_pos",
    "query_equals_pos",
    "no_negatives",
    "eval_leak",
    "duplicate_row",
)
# Repairs: the row is kept, the offending text is removed.
REPAIR_REASONS: tuple[str, ...] = (
    "empty_pos_item",
    "empty_neg",
    "pos_in_neg",
    "duplicate_neg",
    "false_negative_removed",
)
# Warnings: the row is kept as it is; they only inform.
WARNING_REASONS: tuple[str, ...] = (
    "control_chars",
    "over_model_limit",
    "few_negatives",
    "partial_prompt",
    "partial_scores",
    "eval_query_leak",
    "eval_pos_leak",
    "false_negative",
    "too_easy",
)
REASONS = DROP_REASONS + REPAIR_REASONS + WARNING_REASONS

EXPLANATIONS: dict[str, str] = {
    "line_too_long": "the row (a line, an array element, a Parquet or dataset row) is longer than --max-line-bytes: it was never held whole, only its first bytes are shown",
    "invalid_utf8": "the line is not valid UTF-8 (or holds a lone surrogate escape)",
    "malformed_json": "the line is not valid JSON (also: NaN, Infinity, out-of-range numbers, a repeated key)",
    "malformed_csv": "the CSV/TSV row has more or fewer cells than the header has columns",
    "not_object": "the JSON value is not an object",
    "missing_field": "no query or no pos field",
    "wrong_type": "query is not a string, pos/neg is not a list of strings, or prompt is not a string",
    "text_too_long": "a text is longer than --max-text-chars: the tokenizer would need about 64 bytes per character",
    "bad_scores": "pos_scores/neg_scores is not a list of finite numbers, one per text (knowledge distillation would crash or pair the wrong scores)",
    "empty_query": "the query is blank",
    "empty_pos": "no positive has text",
    "query_equals_pos": "the query equals one of its positives: the loss is trivially zero",
    "no_negatives": "too few negatives left (FlagEmbedding divides by their number and crashes)",
    "eval_leak": "the query or a positive is in an --against evaluation file (--drop-leaks)",
    "duplicate_row": "same query and positives as an earlier kept row",
    "empty_pos_item": "blank positive removed",
    "empty_neg": "blank negative removed",
    "pos_in_neg": "negative equal to a positive removed (it would teach the opposite)",
    "duplicate_neg": "repeated negative removed",
    "false_negative_removed": "a negative the base model scores as high as the positive (or a near copy of a positive) removed (--drop-false-negatives)",
    "control_chars": "text holds control characters",
    "over_model_limit": "a text is longer than the model can read: it is always truncated",
    "few_negatives": "fewer negatives than train_group_size - 1: FlagEmbedding repeats some",
    "partial_prompt": "other kept rows have a 'prompt' and this one has none: FlagEmbedding (which concatenates its files) reads it as None and, with an instruction, trains on 'None' + query",
    "partial_scores": "other kept rows have pos_scores/neg_scores and this one has none: knowledge distillation fails on it",
    "eval_query_leak": "the query is a query of an --against evaluation file (exactly, or after normalising whitespace and case)",
    "eval_pos_leak": "a positive is a positive of an --against evaluation file (exactly, or after normalising whitespace and case)",
    "false_negative": "the base model (--model) scores a negative at or above --fn-ratio times the positive, or finds it a near copy of a positive: most likely another positive",
    "too_easy": "the base model (--model) already separates this row's positive from its negatives: its loss at --temperature is below 1e-3, so it teaches nothing",
}


DUPLICATE_ROW = Dropped("duplicate_row", "same query and positives as an earlier kept row")
