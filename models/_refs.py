"""Reference checkpoints shipped in the package (``models/refs/NAME.safetensors``).

A reference is named ``ref:NAME`` on the command line (``--checkpoint ref:mnist-cnn``);
:func:`resolve_ref` turns that into the file, :func:`list_refs` describes every shipped one
from its own metadata (training data fingerprint, settings, validation figures). The
commands that regenerate them are in ``docs/REPRODUCE.md``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._checkpoint_files import read_checkpoint_file

__all__ = ["REFS", "REF_PREFIX", "RefInfo", "list_refs", "refs_dir", "resolve_ref"]

REF_PREFIX = "ref:"

#: Reference name → what it is (every name has a ``refs/NAME.safetensors`` when shipped).
REFS: dict[str, str] = {
    "mnist-cnn": "mnist-cnn on 12,836 real MNIST training digits (published protocol)",
    "mnist-cnn-dcnv2": "mnist-cnn-dcnv2 (DCNv2 twin), same data and protocol",
    "mnist-cnn-aug": "mnist-cnn, same protocol with scale augmentation 0.5-1.5",
    "mnist-cnn-dcnv2-aug": "mnist-cnn-dcnv2, same protocol with scale augmentation 0.5-1.5",
    **{
        f"{name}-s{seed}": f"{name}, training seed {seed} (ref:{name} is seed 0)"
        for name in ("mnist-cnn", "mnist-cnn-dcnv2", "mnist-cnn-aug", "mnist-cnn-dcnv2-aug")
        for seed in (1, 2)
    },
    "cifar-small": "cifar-small on 4,194 real CIFAR-10 training images",
    "cifar-small-dcn": "cifar-small-dcn (DCNv1 twin), same data and protocol",
    "pairs-mnist": "pair-net on MNIST transformation pairs (7 classes)",
}


def refs_dir() -> Path:
    """The folder holding the shipped reference checkpoints."""
    return Path(__file__).resolve().parent / "refs"


@dataclass(frozen=True)
class RefInfo:
    """A shipped reference checkpoint, as its metadata describes it.

    Attributes:
        name: Reference name (use as ``ref:NAME``).
        path: The ``.safetensors`` file.
        description: One line.
        model_name: Registry name of the architecture.
        size_bytes: File size.
        data_fingerprint: The training data's ``DataFingerprint.to_dict()``.
        validation: Validation figures of the kept weights (``accuracy``; classifiers:
            ``mean_scale_accuracy`` and the sweep; pairs: ``per_class``).
        best_epoch: Epoch kept (selected on validation accuracy).
        wall_time_s: Training wall time recorded in the file.
        training: All training settings recorded in the file.
    """

    name: str
    path: Path
    description: str
    model_name: str | None
    size_bytes: int
    data_fingerprint: dict[str, Any] | None
    validation: dict[str, Any]
    best_epoch: int | None
    wall_time_s: float | None
    training: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (for ``geomrobust models --refs --json``)."""
        return {
            "name": self.name,
            "ref": REF_PREFIX + self.name,
            "path": str(self.path),
            "description": self.description,
            "model_name": self.model_name,
            "size_bytes": self.size_bytes,
            "data_fingerprint": self.data_fingerprint,
            "validation": self.validation,
            "best_epoch": self.best_epoch,
            "wall_time_s": self.wall_time_s,
        }


def resolve_ref(name: str) -> Path:
    """The file of reference ``name`` (``"ref:mnist-cnn"`` or ``"mnist-cnn"``).

    Raises:
        TypeError: ``name`` is not a str.
        ValueError: an unknown name (the message lists the shipped ones and the closest
            match) or a known reference whose file is not in this installation.
    """
    if not isinstance(name, str):
        raise TypeError(f"reference name must be a str like 'ref:mnist-cnn'; got {name!r}")
    key = name.removeprefix(REF_PREFIX).strip()
    shipped = [n for n in REFS if (refs_dir() / f"{n}.safetensors").is_file()]
    if key not in REFS:
        close = difflib.get_close_matches(key, list(REFS), n=1, cutoff=0.5)
        hint = f" Did you mean 'ref:{close[0]}'?" if close else ""
        valid = ", ".join(REF_PREFIX + n for n in shipped) or "none"
        raise ValueError(f"unknown reference checkpoint {name!r}; shipped: {valid}.{hint}")
    path = refs_dir() / f"{key}.safetensors"
    if not path.is_file():
        raise ValueError(
            f"reference 'ref:{key}' is not shipped in this installation ({path} is missing); "
            f"shipped: {', '.join(REF_PREFIX + n for n in shipped) or 'none'}. "
            "docs/REPRODUCE.md has the command that trains it."
        )
    return path


def list_refs() -> tuple[RefInfo, ...]:
    """Every shipped reference checkpoint, in :data:`REFS` order, read from its metadata."""
    out = []
    for name, description in REFS.items():
        path = refs_dir() / f"{name}.safetensors"
        if not path.is_file():
            continue
        _, meta = read_checkpoint_file(path)
        training = dict(meta.training) if meta is not None else {}
        out.append(
            RefInfo(
                name=name,
                path=path,
                description=description,
                model_name=meta.model_name if meta is not None else None,
                size_bytes=path.stat().st_size,
                data_fingerprint=(
                    dict(meta.data_fingerprint)
                    if meta is not None and meta.data_fingerprint is not None
                    else None
                ),
                validation=dict(training.get("validation", {})),
                best_epoch=training.get("best_epoch"),
                wall_time_s=training.get("wall_time_s"),
                training=training,
            )
        )
    return tuple(out)
