"""Closed option sets of the transform library, and their parsing."""

from __future__ import annotations

import difflib
from enum import Enum, StrEnum
from typing import TypeVar

__all__ = ["Interpolation", "Padding", "parse_choice"]

E = TypeVar("E", bound=Enum)


class Interpolation(StrEnum):
    """How a warped image is resampled.

    ``BILINEAR`` blends the four nearest source pixels; ``NEAREST`` copies the
    closest one (ties round half to even, as ``torch.round`` does).
    """

    BILINEAR = "bilinear"
    NEAREST = "nearest"


class Padding(StrEnum):
    """What a warp samples where the source point falls outside the image.

    ``ZEROS`` samples 0; ``CONSTANT`` samples the ``fill`` value (one per
    channel, or one for all); ``BORDER`` repeats the edge pixel; ``REFLECTION``
    mirrors the image about its outer pixel edges (``-0.5`` and ``W - 0.5``).
    """

    ZEROS = "zeros"
    CONSTANT = "constant"
    BORDER = "border"
    REFLECTION = "reflection"


def parse_choice(enum: type[E], value: E | str, *, name: str) -> E:
    """Turn ``value`` into a member of ``enum``, or raise a ``ValueError`` naming the choices.

    Args:
        enum: The enum class whose values are the valid choices.
        value: A member of ``enum`` or its string value (case-insensitive).
        name: The parameter name, used in the error message.
    """
    if isinstance(value, enum):
        return value
    if isinstance(value, str):
        key = value.strip().lower()
        for member in enum:
            if member.value == key:
                return member
        choices = [str(m.value) for m in enum]
        close = difflib.get_close_matches(key, choices, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{name} must be one of {choices}; got {value!r}.{hint}")
    raise TypeError(f"{name} must be a str or {enum.__name__}; got {type(value).__name__}")
