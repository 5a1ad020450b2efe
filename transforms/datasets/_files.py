"""Finding a split's files under a data root, and reading them with their digests.

A data root may be the folder torchvision downloads into (``ROOT/MNIST/raw/...``,
``ROOT/cifar-10-batches-py/...``), or any folder below it that holds the files. The files
are found by name and then checked by format; an official checksum that does not match is
a :class:`ChecksumWarning`, never a refusal.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ._errors import ChecksumWarning, DatasetError, DatasetNotFoundError
from ._fingerprint import FileDigest

__all__ = ["ReadFile", "find_split_files", "read_file", "resolve_root"]

_PACKAGE_DIR = os.path.dirname(__file__)


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside this package."""
    level, frame = 1, sys._getframe(1)  # stacklevel 1 is the function calling warnings.warn
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        level, frame = level + 1, frame.f_back
    return level


def resolve_root(root: str | os.PathLike[str], *, dataset: str, create: bool = False) -> Path:
    """``root`` as an existing folder, or a :class:`DatasetNotFoundError` saying what to pass.

    Args:
        root: The data root given by the caller (``~`` is expanded).
        dataset: Dataset name for the message.
        create: Create the folder (and its parents) if it does not exist (for downloads).
    """
    if isinstance(root, bytes) or not isinstance(root, str | os.PathLike):
        raise TypeError(f"root must be a str or os.PathLike folder; got {type(root).__name__}")
    path = Path(root).expanduser()
    if create and not path.exists():
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            raise DatasetNotFoundError(
                f"cannot create data root {str(path)!r} for {dataset!r}: {exc}", path=path
            ) from exc
    if not path.exists():
        raise DatasetNotFoundError(
            f"data root {str(path)!r} for {dataset!r} does not exist; pass as root= the folder "
            "that holds the dataset's files, or download=True to fetch them there with "
            "torchvision (needs internet)",
            path=path,
        )
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"data root {str(path)!r} for {dataset!r} is a file, not a folder; pass as root= "
            "the folder that holds the dataset's files",
            path=path,
        )
    return path


def find_split_files(
    root: Path,
    *,
    subdirs: Sequence[str],
    files: Sequence[Sequence[str]],
    dataset: str,
    split: str,
    fix: str,
) -> list[Path]:
    """The files of one split, from the first of ``root / subdir`` that holds all of them.

    Args:
        root: The data root (an existing folder).
        subdirs: Folders to search, relative to ``root``, in order (``"."`` is root itself).
        files: One entry per required file: its accepted names, preferred first
            (e.g. ``("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte")``).
        dataset: Dataset name for the message.
        split: Split name for the message.
        fix: What the user can do, appended to the message.

    Returns:
        One existing path per entry of ``files``, all in the same folder.

    Raises:
        DatasetNotFoundError: no searched folder holds every file; the message names the
            folders searched and the missing files of the most complete one.
    """
    best: tuple[int, Path, list[str]] | None = None
    for sub in subdirs:
        folder = root if sub == "." else root / sub
        if not folder.is_dir():
            continue
        found: list[Path] = []
        missing: list[str] = []
        for names in files:
            hit = next((folder / n for n in names if (folder / n).is_file()), None)
            if hit is None:
                missing.append(" or ".join(names))
            else:
                found.append(hit)
        if not missing:
            return found
        if found and (best is None or len(found) > best[0]):
            best = (len(found), folder, missing)
    searched = ", ".join(repr(str(root if s == "." else root / s)) for s in subdirs)
    if best is not None:
        _, folder, missing = best
        raise DatasetNotFoundError(
            f"{dataset} {split!r} split is incomplete in {str(folder)!r}: missing "
            f"{'; '.join(missing)}. {fix}",
            path=folder,
        )
    wanted = "; ".join(" or ".join(names) for names in files)
    raise DatasetNotFoundError(
        f"{dataset} {split!r} split not found under data root {str(root)!r}: expected "
        f"{wanted} in one of {searched}. {fix}",
        path=root,
    )


@dataclass(frozen=True, eq=False)
class ReadFile:
    """A file read whole, with its digest; see :func:`read_file`.

    Attributes:
        path: The file.
        data: Its bytes as stored.
        digest: Its :class:`FileDigest`.
        md5: Its md5, or ``None`` when no official checksum was given.
        official_md5: The official file's md5, or ``None`` if unknown.
        what: What the file is, for messages (e.g. ``"MNIST train images"``).
    """

    path: Path
    data: bytes
    digest: FileDigest
    md5: str | None
    official_md5: str | None
    what: str

    def warn_if_unofficial(self) -> None:
        """Issue a :class:`ChecksumWarning` if the md5 differs from the official one.

        Call it after the file parsed, so that the warning only ever concerns valid data.
        """
        if self.official_md5 is None or self.md5 == self.official_md5:
            return
        warnings.warn(
            f"{str(self.path)!r} ({self.what}) has md5 {self.md5}, not the official "
            f"{self.official_md5}: its format is valid and it is used, but it is not "
            "byte-identical to the official release (a partial copy, a re-compressed archive "
            "or a corrupted download). The fingerprint records its sha256.",
            ChecksumWarning,
            stacklevel=_caller_stacklevel(),
        )


def read_file(path: Path, *, root: Path, official_md5: str | None, what: str) -> ReadFile:
    """Read a whole file and digest it (sha256, and md5 when an official one is known).

    Args:
        path: The file.
        root: The data root; the digest names the file relative to it.
        official_md5: The md5 of the official file of that name, or ``None`` if unknown.
        what: What the file is, for messages (e.g. ``"MNIST train images"``).

    Raises:
        DatasetError: the file cannot be read.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {str(path)!r} ({what}): {exc}", path=path) from exc
    try:
        name = path.relative_to(root).as_posix()
    except ValueError:
        name = path.name
    md5 = None
    if official_md5 is not None:
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    match = None if md5 is None else md5 == official_md5
    digest = FileDigest(name, hashlib.sha256(data).hexdigest(), len(data), match)
    return ReadFile(path, data, digest, md5, official_md5, what)
