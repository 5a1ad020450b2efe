"""The model registry: names → builders, with defaults, and per-entry size and cost.

Every builder has the same keyword-only signature::

    builder(*, in_channels, num_classes, input_size, device, dtype, **options) -> nn.Module

:func:`build_model` fills the first five from the entry's defaults, checks them, and
rejects options the builder does not take (listing those it does).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ._common import Builder, check_int, check_pair
from ._deform import DeformConv2dBlock

__all__ = [
    "ModelInfo",
    "build_model",
    "get_model_info",
    "list_models",
    "model_spec",
    "register_model",
]

_STANDARD = ("in_channels", "num_classes", "input_size", "device", "dtype")
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_SPEC_ATTR = "_geomrobust_spec"


@dataclass(frozen=True)
class _Entry:
    name: str
    builder: Builder
    input_shape: tuple[int, int, int]
    num_classes: int
    num_inputs: int
    twin_of: str | None
    description: str
    options: tuple[str, ...]
    any_options: bool


_REGISTRY: dict[str, _Entry] = {}


@dataclass(frozen=True)
class ModelInfo:
    """What a registered model is and what it costs, for one configuration.

    Attributes:
        name: Registry name.
        description: One line.
        input_shape: ``(C, H, W)`` of one input image.
        num_classes: Output classes (0: the model returns features).
        num_inputs: Images per sample: 1 for classifiers, 2 for ``pair-net``.
        twin_of: For a DCN twin, the registry name of its regular twin; else ``None``.
        deformable: Whether this configuration has deformable convolutions.
        options: The builder's own keyword options (beyond the standard ones).
        params: Number of parameters (buffers such as BatchNorm statistics not included).
        flops: FLOPs of one forward pass on one sample of ``input_shape`` (see
            :func:`count_flops` for what is counted).
    """

    name: str
    description: str
    input_shape: tuple[int, int, int]
    num_classes: int
    num_inputs: int
    twin_of: str | None
    deformable: bool
    options: tuple[str, ...]
    params: int
    flops: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the field names as keys (shapes as lists)."""
        return {
            "name": self.name,
            "description": self.description,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "num_inputs": self.num_inputs,
            "twin_of": self.twin_of,
            "deformable": self.deformable,
            "options": list(self.options),
            "params": self.params,
            "flops": self.flops,
        }


def register_model(
    name: str,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int = 10,
    num_inputs: int = 1,
    twin_of: str | None = None,
    description: str | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator registering a builder under ``name``.

    Args:
        name: Lowercase letters, digits, ``-``, ``_`` and ``.``; must be new.
        input_shape: Default ``(C, H, W)`` of one input image.
        num_classes: Default class count.
        num_inputs: Images per sample the model's ``forward`` takes.
        twin_of: For a DCN twin, the (already registered) regular twin's name.
        description: One line; defaults to the first line of the builder's docstring.

    Raises:
        ValueError: ``name`` is malformed or already registered, or ``twin_of`` is unknown.
        TypeError: the builder does not take the standard keyword-only arguments
            ``in_channels, num_classes, input_size, device, dtype``.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"model name must be lowercase letters, digits, '-', '_' or '.'; got {name!r}"
        )
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W); got {input_shape!r}")
    for i, v in enumerate(shape):
        check_int(v, name=f"input_shape[{i}]", minimum=1)
    if twin_of is not None and twin_of not in _REGISTRY:
        raise ValueError(f"twin_of={twin_of!r} is not registered; register the regular twin first")

    def decorator(builder: Builder) -> Builder:
        if name in _REGISTRY:
            other = _REGISTRY[name].builder
            raise ValueError(
                f"model {name!r} is already registered (by {other.__module__}."
                f"{other.__qualname__}); choose another name"
            )
        params = inspect.signature(builder).parameters
        missing = [
            s for s in _STANDARD if s not in params or params[s].kind is not params[s].KEYWORD_ONLY
        ]
        if missing:
            raise TypeError(
                f"builder {builder.__qualname__} for {name!r} must take keyword-only "
                f"arguments {list(_STANDARD)}; missing {missing}"
            )
        options = tuple(
            p.name for p in params.values() if p.kind is p.KEYWORD_ONLY and p.name not in _STANDARD
        )
        any_options = any(p.kind is p.VAR_KEYWORD for p in params.values())
        doc = description or (inspect.getdoc(builder) or "").split("\n", 1)[0]
        _REGISTRY[name] = _Entry(
            name=name,
            builder=builder,
            input_shape=shape,  # type: ignore[arg-type]
            num_classes=check_int(num_classes, name="num_classes", minimum=0),
            num_inputs=check_int(num_inputs, name="num_inputs", minimum=1),
            twin_of=twin_of,
            description=doc,
            options=options,
            any_options=any_options,
        )
        return builder

    return decorator


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def _entry(name: Any) -> _Entry:
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str; got {type(name).__name__}")
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown model {name!r}; valid: {list_models()}.{hint}")
    return _REGISTRY[name]


def _resolve_args(entry: _Entry, in_channels, num_classes, input_size, kwargs) -> dict[str, Any]:
    """Defaults filled in and checked; the JSON-ready arguments of the build."""
    in_channels = entry.input_shape[0] if in_channels is None else in_channels
    num_classes = entry.num_classes if num_classes is None else num_classes
    input_size = entry.input_shape[1:] if input_size is None else input_size
    unknown = sorted(set(kwargs) - set(entry.options)) if not entry.any_options else []
    if unknown:
        raise TypeError(
            f"model {entry.name!r} takes no option(s) {unknown}; its options are "
            f"{list(entry.options)} besides in_channels, num_classes, input_size, device, dtype"
        )
    return {
        "in_channels": check_int(in_channels, name="in_channels", minimum=1),
        "num_classes": check_int(num_classes, name="num_classes", minimum=0),
        "input_size": list(check_pair(input_size, name="input_size", minimum=1)),
        **kwargs,
    }


def build_model(
    name: str,
    *,
    in_channels: int | None = None,
    num_classes: int | None = None,
    input_size: int | tuple[int, int] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model with fresh (random) weights.

    Args:
        name: Registry name (see :func:`list_models`).
        in_channels: Input channels (default: the entry's, e.g. 1 for ``mnist-cnn``).
        num_classes: Output classes (default: the entry's); 0 returns features instead.
        input_size: ``(H, W)`` or one int for square inputs (default: the entry's). Models
            with a global pooling accept other sizes too; ``cifar-small`` needs this one.
        device: Device of the parameters (default: the current default device).
        dtype: Floating dtype of the parameters (default: the default dtype).
        **kwargs: The builder's own options (e.g. ``deformable_stages``); they must be
            JSON-serialisable for the model to be saved with :func:`save_checkpoint`.

    Returns:
        The model, in training mode. :func:`model_spec` gives back ``(name, arguments)``.

    Raises:
        ValueError: unknown ``name`` (the message lists the registered ones) or bad values.
        TypeError: an option the builder does not take (the message lists those it does).
    """
    entry = _entry(name)
    args = _resolve_args(entry, in_channels, num_classes, input_size, kwargs)
    built_args = {**args, "input_size": tuple(args["input_size"])}
    model = entry.builder(**built_args, device=device, dtype=dtype)
    if not isinstance(model, nn.Module):
        raise TypeError(f"builder of {name!r} returned {type(model).__name__}, not an nn.Module")
    setattr(model, _SPEC_ATTR, (name, args))
    return model


def model_spec(model: nn.Module) -> tuple[str, dict[str, Any]] | None:
    """``(name, arguments)`` that :func:`build_model` built ``model`` from, or ``None``.

    ``build_model(name, **arguments)`` rebuilds the same architecture.
    """
    spec = getattr(model, _SPEC_ATTR, None)
    if spec is None:
        return None
    name, args = spec
    return name, dict(args)


def get_model_info(
    name: str,
    *,
    in_channels: int | None = None,
    num_classes: int | None = None,
    input_size: int | tuple[int, int] | None = None,
    **kwargs: Any,
) -> ModelInfo:
    """Describe a registered model and count its parameters and FLOPs.

    The model is built on the ``meta`` device (no memory, no initialisation), so this is
    cheap even for large models.

    Args:
        name, in_channels, num_classes, input_size, **kwargs: As in :func:`build_model`.

    Raises:
        ValueError, TypeError: As :func:`build_model`.
    """
    if not kwargs:
        return _cached_info(name, in_channels, num_classes, _hashable(input_size))
    return _info(name, in_channels, num_classes, input_size, kwargs)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@functools.lru_cache(maxsize=256)
def _cached_info(name, in_channels, num_classes, input_size) -> ModelInfo:
    return _info(name, in_channels, num_classes, input_size, {})


def _info(name, in_channels, num_classes, input_size, kwargs: Mapping[str, Any]) -> ModelInfo:
    from ._flops import count_flops, count_params

    entry = _entry(name)
    model = build_model(
        name,
        in_channels=in_channels,
        num_classes=num_classes,
        input_size=input_size,
        device="meta",
        **kwargs,
    )
    args = model_spec(model)[1]  # type: ignore[index]
    shape = (args["in_channels"], *args["input_size"])
    inputs = [torch.empty((1, *shape), device="meta") for _ in range(entry.num_inputs)]
    return ModelInfo(
        name=name,
        description=entry.description,
        input_shape=shape,  # type: ignore[arg-type]
        num_classes=args["num_classes"],
        num_inputs=entry.num_inputs,
        twin_of=entry.twin_of,
        deformable=any(isinstance(m, DeformConv2dBlock) for m in model.modules()),
        options=entry.options,
        params=count_params(model),
        flops=count_flops(model, *inputs),
    )
