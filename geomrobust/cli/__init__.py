"""The ``geomrobust`` console script: a layer on top of the library that nobody imports.

One module per command (``_eval``, ``_eval_pairs``, ``_compare``, ``_train``, ...), the shared
options in :mod:`._options`, the torchrun rank jobs in :mod:`._ranks`, and the one place that
turns errors into ``error: ...`` and exit status 2 in :mod:`._errors`.
"""

from geomrobust.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
