"""What a checkpoint says about itself: :class:`CheckpointMeta` and its metadata encoding.

In the ``.safetensors`` file every field is one metadata entry ``"geomrobust.<field>"``
whose value is the field as a JSON string (safetensors metadata maps str to str), except
``unwrapped``, which says how a file was read, not what it holds.
"""

from __future__ import annotations

import json
import math
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from geomrobust._json import loads

__all__ = ["FORMAT_VERSION", "CheckpointMeta", "package_version"]

#: Version of the metadata layout; a file with a larger one needs a newer geomrobust.
FORMAT_VERSION = 1
PREFIX = "geomrobust."
SHA_KEY = PREFIX + "weights_sha256"
_READ_ONLY = ("unwrapped",)  # fields set when a file is read, never written to one


def package_version() -> str:
    """The installed geomrobust version, or ``"0+unknown"`` in an uninstalled source tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("geomrobust")
    except PackageNotFoundError:
        return "0+unknown"


def _json_mapping(value: Any, *, name: str, optional: bool) -> Mapping[str, Any] | None:
    """A read-only deep copy of a JSON-ready mapping (objects with ``to_dict()`` accepted)."""
    if value is None and optional:
        return None
    if hasattr(value, "to_dict") and callable(value.to_dict):
        value = value.to_dict()
    if not isinstance(value, Mapping):
        raise TypeError(f"CheckpointMeta.{name} must be a dict; got {type(value).__name__}")
    try:
        copy = json.loads(json.dumps(dict(value), allow_nan=False, default=_no_json))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"CheckpointMeta.{name} must be JSON-serialisable: {exc}") from None
    return types.MappingProxyType(copy)


def _no_json(obj: Any) -> Any:
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} {obj!r} is not JSON-serialisable")


def _floats(value: Any, *, name: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise TypeError(f"CheckpointMeta.{name} must be a non-empty sequence of floats")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"CheckpointMeta.{name} must hold finite floats; got {list(value)}")
        out.append(float(v))
    return tuple(out)


@dataclass(frozen=True)
class CheckpointMeta:
    """Everything needed to rebuild and use a saved model.

    Attributes:
        model_name: Registry name (``"mnist-cnn"``) or ``"package.module:factory"``.
            :func:`save_checkpoint` fills it from models made by :func:`build_model`.
        model_args: Keyword arguments that rebuild the architecture
            (``build_model(model_name, **model_args)`` or ``factory(**model_args)``).
        input_shape: ``(C, H, W)`` of one input image.
        class_names: One name per output class, in output order.
        mean: Per-channel mean subtracted from ``[0, 1]`` images before the model.
        std: Per-channel standard deviation the images are divided by (after ``mean``).
        data_fingerprint: What the model was trained on (a ``DataFingerprint.to_dict()``;
            a ``DataFingerprint`` is accepted and converted).
        training: Training settings (epochs, optimiser, learning rate, seed, ...), JSON.
        package_version: geomrobust version that wrote the file (filled on save).
        format_version: Metadata layout version.
        unwrapped: What :func:`load_checkpoint` removed to get the weights of a file without
            metadata, in order: a wrapper key of a training state
            (``"state_dict key 'state_dict'"``) and key prefixes (``"prefix 'module.'"``,
            ``"prefix '_orig_mod.'"``). Not written to files.

    The mappings are stored as read-only JSON copies; the class is frozen.

    Raises:
        TypeError, ValueError: a field has the wrong type, is not JSON-serialisable, or
            disagrees with another (e.g. 10 class names but ``num_classes=7``).
    """

    model_name: str | None = None
    model_args: Mapping[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, int, int] | None = None
    class_names: tuple[str, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    data_fingerprint: Mapping[str, Any] | None = None
    training: Mapping[str, Any] = field(default_factory=dict)
    package_version: str | None = None
    format_version: int = FORMAT_VERSION
    unwrapped: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.model_name is not None and (
            not isinstance(self.model_name, str) or not self.model_name
        ):
            raise TypeError(
                f"CheckpointMeta.model_name must be a non-empty str; got {self.model_name!r}"
            )
        set_(self, "model_args", _json_mapping(self.model_args, name="model_args", optional=False))
        set_(self, "training", _json_mapping(self.training, name="training", optional=False))
        set_(
            self,
            "data_fingerprint",
            _json_mapping(self.data_fingerprint, name="data_fingerprint", optional=True),
        )
        if self.input_shape is not None:
            shape = tuple(self.input_shape)
            if len(shape) != 3 or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape
            ):
                raise ValueError(
                    "CheckpointMeta.input_shape must be (C, H, W) of positive ints; "
                    f"got {self.input_shape!r}"
                )
            set_(self, "input_shape", shape)
        if self.class_names is not None:
            names = self.class_names
            if isinstance(names, str) or not all(isinstance(n, str) for n in names):
                raise TypeError(
                    f"CheckpointMeta.class_names must be a sequence of str; got {names!r}"
                )
            set_(self, "class_names", tuple(names))
        set_(self, "mean", _floats(self.mean, name="mean"))
        set_(self, "std", _floats(self.std, name="std"))
        self._check_consistency()
        if self.package_version is not None and not isinstance(self.package_version, str):
            raise TypeError("CheckpointMeta.package_version must be a str or None")
        if isinstance(self.format_version, bool) or not isinstance(self.format_version, int):
            raise TypeError(
                f"CheckpointMeta.format_version must be an int; got {self.format_version!r}"
            )
        notes = self.unwrapped
        if (
            isinstance(notes, str)
            or not isinstance(notes, Sequence)
            or not all(isinstance(u, str) for u in notes)
        ):
            raise TypeError(f"CheckpointMeta.unwrapped must be a sequence of str; got {notes!r}")
        set_(self, "unwrapped", tuple(notes))

    def _check_consistency(self) -> None:
        if (self.mean is None) != (self.std is None):
            raise ValueError("CheckpointMeta.mean and std must be given together (or neither)")
        if self.std is not None and min(self.std) <= 0:
            raise ValueError(f"CheckpointMeta.std must be > 0; got {list(self.std)}")
        channels = self.input_shape[0] if self.input_shape else self.model_args.get("in_channels")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and channels is not None and len(value) not in (1, channels):
                raise ValueError(
                    f"CheckpointMeta.{name} has {len(value)} values; the model takes "
                    f"{channels} channel(s) (give one per channel, or one for all)"
                )
        declared = self.model_args.get("num_classes")
        if self.class_names is not None and declared not in (None, len(self.class_names)):
            raise ValueError(
                f"CheckpointMeta.class_names has {len(self.class_names)} names but "
                f"model_args['num_classes'] is {declared}"
            )

    @property
    def num_classes(self) -> int | None:
        """Classes the model predicts: from ``class_names`` or ``model_args``; else ``None``."""
        if self.class_names is not None:
            return len(self.class_names)
        value = self.model_args.get("num_classes")
        return value if isinstance(value, int) else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the field names as keys."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Mapping):
                value = json.loads(json.dumps(dict(value)))
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckpointMeta:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown CheckpointMeta field(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(data))

    def to_metadata(self) -> dict[str, str]:
        """safetensors metadata: ``{"geomrobust.<field>": json}`` (without ``unwrapped``)."""
        return {
            PREFIX + k: json.dumps(v, allow_nan=False)
            for k, v in self.to_dict().items()
            if k not in _READ_ONLY
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> CheckpointMeta | None:
        """Inverse of :meth:`to_metadata`; ``None`` when no ``geomrobust.`` entry is present.

        Raises:
            ValueError: an entry is not JSON, a field is invalid, or the format is newer.
        """
        data: dict[str, Any] = {}
        for key, raw in metadata.items():
            if not key.startswith(PREFIX) or key == SHA_KEY or key[len(PREFIX) :] in _READ_ONLY:
                continue
            try:
                data[key[len(PREFIX) :]] = loads(raw)
            except json.JSONDecodeError as exc:
                raise ValueError(f"metadata entry {key!r} is not valid JSON ({exc})") from None
        if not data:
            return None
        version = data.get("format_version")
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise ValueError(
                f"metadata format {version} is newer than this geomrobust reads "
                f"({FORMAT_VERSION}; written by geomrobust {data.get('package_version')}); "
                "upgrade geomrobust"
            )
        return cls.from_dict(data)
