"""JSON from files we did not write: nesting beyond Python's recursion limit is a decode
error that names the field, not a ``RecursionError``."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["JsonNestingError", "loads"]

_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:]')


class JsonNestingError(json.JSONDecodeError):
    """JSON nested too deeply to read; ``field`` is the top-level key it happens under."""

    def __init__(self, field: str | None, doc: str, pos: int) -> None:
        where = f"field {field!r}" if field is not None else "the document"
        super().__init__(
            f"{where} is nested too deeply (beyond Python's recursion limit); it is not a file "
            "geomrobust wrote",
            doc,
            pos,
        )
        self.field = field


def _deep_field(text: str) -> tuple[str | None, int]:
    """The top-level key under which the nesting goes deepest, and where it gets too deep."""
    depth, key, last_string, deepest = 0, None, None, (None, 0, 0)
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token[0] == '"':
            last_string = token
        elif token == ":":
            if depth == 1 and last_string is not None:
                key = json.loads(last_string)
        elif token in "[{":
            depth += 1
            if depth > deepest[1]:
                deepest = (key, depth, match.start())
        else:
            depth -= 1
    return deepest[0], deepest[2]


def loads(text: str) -> Any:
    """``json.loads(text)``; a document nested too deeply raises :class:`JsonNestingError`
    (a ``json.JSONDecodeError``) naming the top-level field it is under."""
    try:
        return json.loads(text)
    except RecursionError:
        field, pos = _deep_field(text)
        raise JsonNestingError(field, text, pos) from None
