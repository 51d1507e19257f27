"""The base model's view of the rows a user will fine-tune it on (issue 25): each distinct text
embedded as the model makes it (``encoder.py``), and what the scores say of a row (``rows.py``).
The zero-loss forecast, which draws batches as the trainer does, is ``train/forecast.py``."""
