"""The bundled trainer and its loss-health checks.

``health`` needs nothing beyond numpy (``lenprof diagnose`` uses it on finished runs); the trainer
itself needs the ``train`` extra (torch, accelerate).
"""
