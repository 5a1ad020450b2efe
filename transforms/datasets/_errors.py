"""Errors and warnings of the dataset loaders.

All errors derive from :class:`DatasetError`, a ``ValueError``, and carry the offending
``path`` (``None`` where no single file is to blame). Messages name the file, say what was
expected and what was found, and how to fix it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ChecksumWarning",
    "DatasetError",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "UnsafePickleError",
]


class DatasetError(ValueError):
    """A dataset could not be loaded.

    Attributes:
        path: The file or folder at fault, or ``None``.
    """

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class DatasetNotFoundError(DatasetError):
    """The data root, or a file a split needs, does not exist (or a download failed)."""


class DatasetFormatError(DatasetError):
    """A file exists but is not in the expected format (bad header, truncated, bad labels)."""


class UnsafePickleError(DatasetFormatError):
    """A pickle asked for a Python object that a dataset file never needs; nothing was run.

    Attributes:
        global_name: The ``module.name`` the pickle tried to load.
    """

    def __init__(self, message: str, *, path: Path | None = None, global_name: str) -> None:
        super().__init__(message, path=path)
        self.global_name = global_name


class ChecksumWarning(UserWarning):
    """A file is valid in format but is not byte-identical to the official release.

    Expected for partial copies and re-compressed archives (e.g. Debian's Fashion-MNIST);
    the data is loaded anyway and the fingerprint records the file's sha256.
    """
