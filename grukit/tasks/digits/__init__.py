"""Spoken-digit recognition on FSDD (Free Spoken Digit Dataset) with a GRU, offline and streaming.

data.py (audio, causal log-mel features, normalization, splits) → model.py (DigitRecognizer) → train.py
(grukit.train toolkit) → evaluate.py → predict.py (files, digit sequences) → stream.py (frame-by-frame
recognition with the GRU step API) → cli.py (``grukit digits train|evaluate|predict|stream``).
"""

from .model import DigitRecognizer, DigitsConfig

__all__ = ["DigitRecognizer", "DigitsConfig"]
