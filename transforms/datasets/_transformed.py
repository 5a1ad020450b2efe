"""Transformed test sets: image ``i`` under sweep point ``j``, lazily or written to disk.

:class:`TransformedDataset` is deterministic (no randomness: the sweep fixes every
parameter). :func:`materialise` writes one as ``.npy`` files plus a ``manifest.json`` that
records the source fingerprint, the transform convention, every image's parameters and the
sha256 of each file, so that :func:`verify_materialised` can check it and the same command
regenerates it byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geomrobust._json import loads

from .._functional import FillLike, warp
from .._options import Interpolation, Padding, parse_choice
from .._sweeps import Sweep
from ._dataset import ImageDataset
from ._errors import DatasetFormatError, DatasetNotFoundError
from ._fingerprint import file_sha256
from ._pairs import PairClass, TransformPairs

__all__ = [
    "CONVENTION",
    "MANIFEST",
    "TransformedDataset",
    "materialise",
    "materialise_pairs",
    "quantise",
    "verify_materialised",
]

MANIFEST = "manifest.json"
SCHEMA = "geomrobust.dataset/1"
CONVENTION = (
    "p' = c + scale * R(angle_deg) * (p - c) + shift_px; pixel centres at integer (x=column, "
    "y=row), x right, y down, c = ((W-1)/2, (H-1)/2), align_corners=False; positive angles "
    "counter-clockwise as displayed; scale and rotation about the centre, then the shift"
)


@dataclass(frozen=True, eq=False)
class TransformedDataset(torch.utils.data.Dataset):
    """A dataset under every point of a sweep, point-major: item ``k`` is image
    ``k % N`` under point ``k // N``.

    Attributes:
        source: The untransformed images.
        sweep: The points.
        interpolation, padding, fill: The warp options (see :func:`geomrobust.transforms.affine`).
    """

    source: ImageDataset
    sweep: Sweep
    interpolation: Interpolation | str = Interpolation.BILINEAR
    padding: Padding | str = Padding.ZEROS
    fill: FillLike = None

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "interpolation",
            parse_choice(Interpolation, self.interpolation, name="interpolation"),
        )
        object.__setattr__(self, "padding", parse_choice(Padding, self.padding, name="padding"))
        if not isinstance(self.sweep, Sweep):
            raise TypeError(f"sweep must be a Sweep; got {type(self.sweep).__name__}")
        if self.fill is not None and self.padding is not Padding.CONSTANT:
            raise ValueError("fill is only used with padding='constant'")

    def __len__(self) -> int:
        return len(self.source) * len(self.sweep)

    def __getitem__(self, k: int) -> tuple[Tensor, int, int]:
        """``(image (C, H, W), label, point index)`` of item ``k``."""
        if not -len(self) <= k < len(self):
            raise IndexError(f"index {k} out of range for {len(self)} items")
        k %= len(self)
        point, i = divmod(k, len(self.source))
        return self.batch(point, torch.tensor([i]))[0][0], int(self.source.labels[i]), point

    def batch(self, point: int, indices: Tensor | slice | None = None) -> tuple[Tensor, Tensor]:
        """Images ``indices`` (default: all) under sweep point ``point``, and their labels."""
        sel = slice(None) if indices is None else indices
        images = self.source.images[sel]
        return (
            warp(
                images,
                self.sweep.points[point],
                interpolation=self.interpolation,
                padding=self.padding,
                fill=self.fill,
            ),
            self.source.labels[sel],
        )

    def convention(self) -> dict[str, Any]:
        """The warp options, as recorded in manifests and results."""
        fill = self.fill
        if isinstance(fill, Tensor):
            fill = fill.tolist()
        elif fill is not None and not isinstance(fill, (int, float)):
            fill = [float(v) for v in fill]
        return {
            "formula": CONVENTION,
            "interpolation": self.interpolation.value,
            "padding": self.padding.value,
            "fill": fill,
            "align_corners": False,
            "storage": "uint8 = round_half_even(clamp(x, 0, 1) * 255)",
        }


def quantise(images: Tensor) -> np.ndarray:
    """Float images in [0, 1] to uint8 as stored: ``round_half_even(clamp(x, 0, 1) · 255)``."""
    return torch.round(images.clamp(0.0, 1.0) * 255.0).to(torch.uint8).numpy()


def materialise(
    data: TransformedDataset,
    out: str | os.PathLike[str],
    *,
    name: str,
    batch_size: int = 1024,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``data`` to ``out`` as ``.npy`` files and a manifest; return the manifest.

    Files (rows point-major, row ``k`` = image ``k % N`` under point ``k // N``):
    ``images.npy`` uint8 ``(P·N, C, H, W)``, ``labels.npy`` int64, ``source_index.npy`` int64,
    ``point_index.npy`` int64 and ``params.npy`` float64 ``(P·N, 4)`` = scale, angle_deg,
    shift x, shift y. Nothing in them depends on the time or the machine, so the same
    inputs give byte-identical files.

    Args:
        data: The transformed dataset.
        out: Output folder; created if missing.
        name: The set's name, recorded in the manifest (e.g. ``"scaled-mnist"``).
        batch_size: Images warped at a time (memory stays bounded: files are memory-mapped).
        force: Overwrite an existing manifest in ``out``.
        progress: Called with the number of images done after each batch.
        extra: More JSON-ready fields for the manifest (e.g. the command line).

    Raises:
        FileExistsError: ``out`` holds a manifest and ``force`` is false.
    """
    folder = _prepare(out, batch_size=batch_size, force=force)
    n, p = len(data.source), len(data.sweep)
    c, h, w = data.source.images.shape[1:]
    rows = n * p
    files = {
        "images.npy": ((rows, c, h, w), np.uint8),
        "labels.npy": ((rows,), np.int64),
        "source_index.npy": ((rows,), np.int64),
        "point_index.npy": ((rows,), np.int64),
        "params.npy": ((rows, 4), np.float64),
    }
    arrays = _open_parts(folder, files)
    labels = data.source.labels.numpy()
    with torch.no_grad():
        for j, point in enumerate(data.sweep.points):
            base = j * n
            arrays["labels.npy"][base : base + n] = labels
            arrays["source_index.npy"][base : base + n] = np.arange(n)
            arrays["point_index.npy"][base : base + n] = j
            arrays["params.npy"][base : base + n] = (point.scale, point.angle_deg, *point.shift_px)
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                images, _ = data.batch(j, slice(start, stop))
                arrays["images.npy"][base + start : base + stop] = quantise(images)
                if progress is not None:
                    progress(stop - start)
    fields = {
        "kind": "transformed",
        "name": name,
        "source": data.source.fingerprint.to_dict(),
        "classes": list(data.source.classes),
        "n_source_images": n,
        "n_points": p,
        "n_images": rows,
        "order": "point-major: row k = image k % n_source_images at point k // n_source_images",
        "sweep": data.sweep.to_dict(),
        "convention": data.convention(),
        **(extra or {}),
    }
    return _finish(folder, files, arrays, fields)


def _prepare(out: str | os.PathLike[str], *, batch_size: int, force: bool) -> Path:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    folder = Path(out)
    if (folder / MANIFEST).exists() and not force:
        raise FileExistsError(
            f"{folder} already holds a generated dataset ({MANIFEST}); pass force=True to "
            "overwrite it or choose another output folder"
        )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _open_parts(folder: Path, files: dict[str, tuple[tuple[int, ...], type]]) -> dict:
    """Memory-mapped ``.npy`` files under temporary names (renamed when complete)."""
    return {
        fname: np.lib.format.open_memmap(folder / f".{fname}.part", mode="w+", dtype=dt, shape=sh)
        for fname, (sh, dt) in files.items()
    }


def _finish(folder: Path, files: dict, arrays: dict, fields: dict[str, Any]) -> dict[str, Any]:
    """Flush, rename into place, hash, and write the manifest last (atomically)."""
    for array in arrays.values():
        array.flush()
    arrays.clear()  # drops the memory maps before the files are renamed
    digests = {}
    for fname, (shape, dtype) in files.items():
        os.replace(folder / f".{fname}.part", folder / fname)
        digests[fname] = {
            "sha256": file_sha256(folder / fname),
            "shape": list(shape),
            "dtype": np.dtype(dtype).name,
        }
    manifest = {
        "schema": SCHEMA,
        **fields,
        "files": digests,
        "content_sha256": hashlib.sha256(
            "".join(d["sha256"] for d in digests.values()).encode()
        ).hexdigest(),
    }
    tmp = folder / f".{MANIFEST}.part"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, folder / MANIFEST)
    return manifest


def _check_manifest(manifest: Any, path: Path) -> dict[str, dict[str, Any]]:
    """The manifest's ``files``, after checking the fields verification reads: a manifest
    edited by hand or by something else says which field is wrong, never crashes."""

    def bad(field: str, expected: str, got: Any) -> DatasetFormatError:
        return DatasetFormatError(
            f"{path} is not a valid manifest: {field} must be {expected}; got "
            f"{type(got).__name__} {str(got)[:60]!r}",
            path=path,
        )

    if not isinstance(manifest, dict):
        raise bad("the manifest", "a JSON object", manifest)
    if manifest.get("schema") != SCHEMA:
        raise DatasetFormatError(
            f"{path} has schema {manifest.get('schema')!r}; expected {SCHEMA!r}", path=path
        )
    for field, kind, expected in (
        ("files", dict, "an object of file name -> {sha256}"),
        ("n_images", int, "an integer"),
    ):
        value = manifest.get(field)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise bad(f"'{field}'", expected, value)
    files = manifest["files"]
    for fname, info in files.items():
        if Path(fname).name != fname or fname in (".", ".."):
            raise bad(f"'files' entry {fname!r}", "a file name inside the folder", fname)
        if not isinstance(info, dict) or not isinstance(info.get("sha256"), str):
            raise bad(f"'files.{fname}'", "an object with a 'sha256' string", info)
    return files


def verify_materialised(out: str | os.PathLike[str]) -> dict[str, Any]:
    """Check every file of a generated set against its manifest; return the manifest.

    Raises:
        DatasetNotFoundError: no manifest, or a listed file is missing.
        DatasetFormatError: the manifest is unreadable, or a file's sha256 differs (the
            message lists the files and says to regenerate them).
    """
    folder = Path(out)
    path = folder / MANIFEST
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{path} not found: not a generated dataset folder (make one with "
            "'geomrobust make-dataset')",
            path=path,
        )
    try:
        manifest = loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{path} is not a valid manifest: {exc}", path=path) from None
    files = _check_manifest(manifest, path)
    bad = []
    for fname, info in files.items():
        file = folder / fname
        if not file.is_file():
            raise DatasetNotFoundError(f"{file} is listed in {MANIFEST} but missing", path=file)
        if file_sha256(file) != info["sha256"]:
            bad.append(fname)
    if bad:
        raise DatasetFormatError(
            f"{folder}: {', '.join(bad)} differ from the sha256 in {MANIFEST}; the files were "
            "changed or corrupted: regenerate them with the command recorded in the manifest",
            path=folder,
        )
    return manifest


def materialise_pairs(
    pairs: TransformPairs,
    out: str | os.PathLike[str],
    *,
    name: str,
    batch_size: int = 1024,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write transformation pairs like :func:`materialise`: ``originals.npy`` and
    ``transformed.npy`` (uint8 ``(N, C, H, W)``), ``labels.npy`` (the pair classes),
    ``source_index.npy`` and ``params.npy`` (scale, angle_deg, shift x, shift y)."""
    folder = _prepare(out, batch_size=batch_size, force=force)
    n = len(pairs)
    shape = tuple(pairs.source.images.shape[1:])
    files = {
        "originals.npy": ((n, *shape), np.uint8),
        "transformed.npy": ((n, *shape), np.uint8),
        "labels.npy": ((n,), np.int64),
        "source_index.npy": ((n,), np.int64),
        "params.npy": ((n, 4), np.float64),
    }
    arrays = _open_parts(folder, files)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            originals, transformed, labels, params = pairs.batch(np.arange(start, stop))
            src, _ = pairs.params(np.arange(start, stop))
            arrays["originals.npy"][start:stop] = quantise(originals)
            arrays["transformed.npy"][start:stop] = quantise(transformed)
            arrays["labels.npy"][start:stop] = labels.numpy()
            arrays["source_index.npy"][start:stop] = src.numpy()
            arrays["params.npy"][start:stop] = torch.cat(
                [params.scale[:, None], params.angle_deg[:, None], params.shift_px], 1
            ).numpy()
            if progress is not None:
                progress(stop - start)
    cfg = pairs.config
    fields = {
        "kind": "pairs",
        "name": name,
        "source": pairs.source.fingerprint.to_dict(),
        "n_images": n,
        "seed": pairs.seed,
        "classes": [c.name.lower() for c in PairClass][: cfg.num_classes],
        "pair_config": {
            "num_classes": cfg.num_classes,
            "angle_deg": [list(r) for r in cfg.angle_deg],
            "scale": [list(r) for r in cfg.scale],
            "shift_fraction": list(cfg.shift_fraction),
            "crop": cfg.crop,
        },
        "convention": {
            "formula": CONVENTION,
            "interpolation": cfg.interpolation.value,
            "padding": cfg.padding.value,
            "fill": None,
            "align_corners": False,
            "storage": "uint8 = round_half_even(clamp(x, 0, 1) * 255)",
        },
        **(extra or {}),
    }
    return _finish(folder, files, arrays, fields)
