"""Errors of checkpoint saving and loading.

All derive from :class:`CheckpointError`, a ``ValueError``, and carry the offending ``path``.
Messages name the file, say what was expected and what was found, and how to fix it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CheckpointClassCountError",
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointMetadataError",
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "TrainingStateError",
    "UnsafeCheckpointError",
]


class CheckpointError(ValueError):
    """A checkpoint could not be saved or loaded.

    Attributes:
        path: The file at fault, or ``None``.
    """

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The file does not exist (or is a folder)."""


class CheckpointFormatError(CheckpointError):
    """The file is truncated, corrupt, or neither safetensors nor a PyTorch file."""


class UnsafeCheckpointError(CheckpointFormatError):
    """A pickle holds Python objects other than tensors; it was refused and nothing ran."""


class CheckpointMetadataError(CheckpointError):
    """The metadata is missing, malformed, from a newer format, or names code to import."""


class CheckpointMismatchError(CheckpointError):
    """The weights' names or shapes do not match the architecture.

    Attributes:
        missing: Keys the model has and the file lacks.
        unexpected: Keys the file has and the model lacks.
        mismatched: ``(key, shape in file, shape in model)`` for keys in both.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Path | None = None,
        missing: tuple[str, ...] = (),
        unexpected: tuple[str, ...] = (),
        mismatched: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = (),
    ) -> None:
        super().__init__(message, path=path)
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched


class CheckpointClassCountError(CheckpointError):
    """The checkpoint's class count disagrees with the dataset's.

    Attributes:
        checkpoint_classes: Classes the checkpoint predicts.
        expected_classes: Classes the caller (the dataset) has.
    """

    def __init__(
        self, message: str, *, path: Path | None = None, checkpoint_classes: int, expected: int
    ) -> None:
        super().__init__(message, path=path)
        self.checkpoint_classes = checkpoint_classes
        self.expected_classes = expected


class TrainingStateError(CheckpointError):
    """A training state (``OUT.state.pt``) cannot be resumed: truncated, corrupt, or not
    one; the message says to start over with ``force``."""
