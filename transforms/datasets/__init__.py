"""Datasets of the suite. ``digits`` is the embedded default: it works offline everywhere."""

from ._digits import DIGITS_CLASSES, load_digits

__all__ = ["DIGITS_CLASSES", "load_digits"]
