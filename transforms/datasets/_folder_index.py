"""What an image folder holds: its class folders and files, their labels, and a fingerprint.

The layout is torchvision's ``ImageFolder``: ``ROOT/<class>/<file>``, files found at any depth
below a class folder, hidden files and folders (``.name``) ignored, files of other types
ignored, everything sorted. Classes are the sorted sub-folder names unless the model
records its own (then folders are matched to them by name) or a class map says which model
output each folder is.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import DatasetFormatError, DatasetNotFoundError

__all__ = [
    "IMAGE_EXTENSIONS",
    "OTHER_CLASS",
    "ClassAssignment",
    "FolderFingerprint",
    "assign_classes",
    "read_class_map",
    "scan_folder",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
OTHER_CLASS = "(other)"


def _visible(name: str) -> bool:
    return not name.startswith(".")


def scan_folder(root: Path) -> dict[str, list[str]]:
    """``{class folder: [file path relative to root, ...]}``, both sorted.

    Raises:
        DatasetNotFoundError: ``root`` is not a folder or has no class sub-folders.
        DatasetFormatError: a class folder holds no image files.
    """
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        raise DatasetNotFoundError(
            f"image folder {root} {what}; pass root=DIR, a folder laid out as DIR/<class>/<image>"
        )
    folders = sorted(e.name for e in os.scandir(root) if e.is_dir() and _visible(e.name))
    if not folders:
        raise DatasetNotFoundError(
            f"image folder {root} has no class sub-folders; lay it out as "
            f"{root}/<class>/<image> (torchvision's ImageFolder layout)"
        )
    found: dict[str, list[str]] = {}
    for folder in folders:
        files = []
        for dirpath, dirnames, filenames in os.walk(root / folder, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if _visible(d))
            for name in filenames:
                if _visible(name) and name.lower().endswith(IMAGE_EXTENSIONS):
                    files.append(os.path.relpath(os.path.join(dirpath, name), root))
        if not files:
            raise DatasetFormatError(
                f"class folder {root / folder} holds no images (expected files ending in "
                f"{', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder"
            )
        found[folder] = sorted(Path(f).as_posix() for f in files)
    return found


def read_class_map(path: str | os.PathLike[str]) -> dict[str, int]:
    """Read a class map: a JSON object ``{folder: index}``, or ``folder index`` lines
    (ImageNet's ``wnid index``; ``#`` starts a comment).

    Raises:
        DatasetNotFoundError: no such file.
        DatasetFormatError: the file is neither form, or an index is not an int >= 0, or a
            folder is listed twice.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DatasetNotFoundError(
            f"cannot read class_map {path}: {exc.strerror or exc}; pass a JSON object "
            "{folder: index} or a file of 'folder index' lines"
        ) from None
    entries: list[tuple[str, Any]] = []
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(f"class_map {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise DatasetFormatError(f"class_map {path} must be a JSON object {{folder: index}}")
        entries = list(data.items())
    else:
        seen: set[str] = set()
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise DatasetFormatError(
                    f"class_map {path} line {number}: expected 'folder index', got {line!r}"
                )
            if parts[0] in seen:
                raise DatasetFormatError(f"class_map {path} lists folder {parts[0]!r} twice")
            seen.add(parts[0])
            entries.append((parts[0], parts[1]))
    if not entries:
        raise DatasetFormatError(f"class_map {path} is empty")
    mapping: dict[str, int] = {}
    for folder, index in entries:
        try:
            value = int(index) if not isinstance(index, bool | float) else None
        except (TypeError, ValueError):
            value = None
        if value is None or value < 0:
            raise DatasetFormatError(
                f"class_map {path}: folder {folder!r} maps to {index!r}; expected a model "
                "output index (an int >= 0)"
            )
        mapping[str(folder)] = value
    return mapping


@dataclass(frozen=True)
class ClassAssignment:
    """How class folders become labels.

    Attributes:
        classes: The dataset's class names, indexed by label.
        label_of: ``{folder: label}``.
        output_index: With a class map, the model output of each class but the last
            (:data:`OTHER_CLASS`, any output outside the map); ``None`` when labels are the
            model's outputs.
        source: ``"folders"``, ``"checkpoint"`` or ``"class_map"``.
    """

    classes: tuple[str, ...]
    label_of: Mapping[str, int]
    output_index: tuple[int, ...] | None
    source: str


def _unknown(root: Path, folders: Sequence[str], known: Sequence[str], what: str) -> str:
    shown = []
    for f in folders[:3]:
        close = difflib.get_close_matches(f, list(known), n=1, cutoff=0.6)
        shown.append(f"{f!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    more = f" and {len(folders) - 3} more" if len(folders) > 3 else ""
    return f"folder(s) {', '.join(shown)}{more} of {root} are not {what}"


def assign_classes(
    root: Path,
    folders: Sequence[str],
    *,
    classes: Sequence[str] | None = None,
    class_map: Mapping[str, int] | None = None,
) -> ClassAssignment:
    """Labels of the class folders.

    * ``class_map``: each folder's label is its model output; the dataset's classes are
      the mapped folders in output order, then :data:`OTHER_CLASS`.
    * ``classes`` (the model's own class names): folders are matched by name, in any order
      and for any subset; labels are indices into ``classes``.
    * neither: the sorted folder names (``ImageFolder``'s rule).

    Raises:
        DatasetFormatError: a folder that is not among ``classes`` or not in ``class_map``
            (the message names it), or two folders mapped to one output.
    """
    if class_map is not None:
        missing = [f for f in folders if f not in class_map]
        if missing:
            raise DatasetFormatError(
                _unknown(root, missing, list(class_map), "in class_map")
                + "; add them to the map or remove them from the folder"
            )
        by_output: dict[int, str] = {}
        for f in folders:
            other = by_output.setdefault(class_map[f], f)
            if other != f:
                raise DatasetFormatError(
                    f"class_map maps folders {other!r} and {f!r} to the same output "
                    f"{class_map[f]}; each folder needs its own output"
                )
        ordered = sorted(folders, key=lambda f: class_map[f])
        return ClassAssignment(
            classes=(*ordered, OTHER_CLASS),
            label_of={f: i for i, f in enumerate(ordered)},
            output_index=tuple(class_map[f] for f in ordered),
            source="class_map",
        )
    if classes is not None:
        classes = tuple(classes)
        missing = [f for f in folders if f not in classes]
        if missing:
            raise DatasetFormatError(
                _unknown(root, missing, classes, f"among the model's classes {list(classes[:5])}")
                + "; rename the folders to the model's class names or pass class_map=FILE"
            )
        return ClassAssignment(
            classes=classes,
            label_of={f: classes.index(f) for f in folders},
            output_index=None,
            source="checkpoint",
        )
    return ClassAssignment(
        classes=tuple(folders),
        label_of={f: i for i, f in enumerate(folders)},
        output_index=None,
        source="folders",
    )


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class FolderFingerprint:
    """The identity of the images of a folder, independent of where the folder lives.

    Attributes:
        kind: ``"content"`` (each file's sha256) or ``"fast"`` (each file's mtime instead).
        n_images: Files listed.
        total_bytes: Their sizes, summed.
        listing_sha256: sha256 of the sorted ``relative path, size`` lines.
        content_sha256: sha256 of the files' sha256s (``"content"``) or of their mtimes in
            nanoseconds (``"fast"``), in listing order.
        labels_sha256: sha256 of the labels as ``int64``.
    """

    kind: str
    n_images: int
    total_bytes: int
    listing_sha256: str
    content_sha256: str
    labels_sha256: str
    dataset: str = "imagefolder"

    @classmethod
    def compute(cls, root: Path, files: Sequence[str], labels_sha256: str, *, kind: str):
        if kind not in ("content", "fast"):
            raise ValueError(f"fingerprint must be 'content' or 'fast'; got {kind!r}")
        stats = [os.stat(root / f) for f in files]
        listing = hashlib.sha256()
        for f, st in zip(files, stats, strict=True):
            listing.update(f"{f}\0{st.st_size}\n".encode())
        content = hashlib.sha256()
        if kind == "content":
            with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
                for digest in pool.map(_file_sha256, (root / f for f in files), chunksize=64):
                    content.update(digest.encode())
        else:
            for st in stats:
                content.update(f"{st.st_mtime_ns}\n".encode())
        return cls(
            kind=kind,
            n_images=len(files),
            total_bytes=sum(st.st_size for st in stats),
            listing_sha256=listing.hexdigest(),
            content_sha256=content.hexdigest(),
            labels_sha256=labels_sha256,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "kind": self.kind,
            "n_images": self.n_images,
            "total_bytes": self.total_bytes,
            "listing_sha256": self.listing_sha256,
            "content_sha256": self.content_sha256,
            "labels_sha256": self.labels_sha256,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FolderFingerprint:
        return cls(
            kind=data["kind"],
            n_images=int(data["n_images"]),
            total_bytes=int(data["total_bytes"]),
            listing_sha256=data["listing_sha256"],
            content_sha256=data["content_sha256"],
            labels_sha256=data["labels_sha256"],
        )
