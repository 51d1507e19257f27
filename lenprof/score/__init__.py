"""Scoring rows with the base model a user will fine-tune (issue 25): embeddings of each distinct
text (``encoder.py``)."""
