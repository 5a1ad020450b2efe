"""Architectures named outside the registry: ``package.module:factory`` (the caller's own
code), ``torchvision:NAME`` and ``timm:NAME``.

``torchvision:NAME`` builds ``torchvision.models.get_model(NAME, weights=None, **args)`` and
``timm:NAME`` builds ``timm.create_model(NAME, pretrained=False, **args)`` (timm is optional:
``pip install 'geomrobust[timm]'``). Neither ever downloads weights: they come from the
checkpoint.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from functools import partial
from typing import Any

from torch import nn

__all__ = ["LIBRARY_PREFIXES", "factory", "is_library_name", "is_registry_name", "is_user_spec"]

TORCHVISION, TIMM = "torchvision:", "timm:"
#: Prefixes of architectures built by an installed library (safe to build from a file's name).
LIBRARY_PREFIXES = (TORCHVISION, TIMM)
# Arguments that would fetch or read weights other than the checkpoint's.
_WEIGHT_ARGS = {
    TORCHVISION: ("weights", "weights_backbone"),
    TIMM: ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path"),
}
_SHOW = 5  # close matches listed for an unknown name


def is_library_name(name: str) -> bool:
    """``torchvision:NAME`` or ``timm:NAME``."""
    return name.startswith(LIBRARY_PREFIXES)


def is_user_spec(name: str) -> bool:
    """``package.module:factory``: code the caller names (never imported from a file alone)."""
    return ":" in name and not is_library_name(name)


def is_registry_name(name: str) -> bool:
    """A name for :func:`build_model` (no ``:``)."""
    return ":" not in name


def factory(name: str, args: dict[str, Any]) -> Callable[[], nn.Module]:
    """A callable that builds ``name`` with ``args`` (checked first where it can be).

    Args:
        name: ``package.module:factory``, ``torchvision:NAME`` or ``timm:NAME``.
        args: Keyword arguments for the factory.

    Raises:
        ValueError: a malformed or unknown name, a module that cannot be imported, timm not
            installed, or an argument that would load weights other than the checkpoint's.
        TypeError: the named object is not callable.
    """
    if name.startswith(TORCHVISION):
        return _torchvision(name, args)
    if name.startswith(TIMM):
        return _timm(name, args)
    return partial(_import_factory(name), **args)


def _torchvision(name: str, args: dict[str, Any]) -> Callable[[], nn.Module]:
    import torchvision

    arch = name[len(TORCHVISION) :]
    known = torchvision.models.list_models()
    if arch not in known:
        raise ValueError(f"unknown model {name!r}{_close(arch, known, TORCHVISION)}")
    _refuse_weight_args(name, args, TORCHVISION)
    return partial(torchvision.models.get_model, arch, weights=None, **args)


def _timm(name: str, args: dict[str, Any]) -> Callable[[], nn.Module]:
    arch = name[len(TIMM) :]
    if not arch or ":" in arch or "/" in arch:
        raise ValueError(
            f"model {name!r}: timm:NAME takes a timm architecture name such as "
            "'timm:resnet18' (hub names like 'hf-hub:org/model' would download; the weights "
            "come from the checkpoint)"
        )
    try:
        timm = importlib.import_module("timm")
    except ImportError:
        raise ValueError(
            f"model {name!r} needs timm, which is not installed: pip install 'geomrobust[timm]'"
        ) from None
    if not timm.is_model(arch):
        raise ValueError(f"unknown model {name!r}{_close(arch, timm.list_models(), TIMM)}")
    _refuse_weight_args(name, args, TIMM)
    return partial(timm.create_model, arch, pretrained=False, **args)


def _close(arch: str, known: list[str], prefix: str) -> str:
    close = difflib.get_close_matches(arch, known, n=_SHOW, cutoff=0.5)
    if close:
        return f"; close matches: {[prefix + c for c in close]}"
    return f"; it has {len(known)} models, e.g. {[prefix + k for k in sorted(known)[:_SHOW]]}"


def _refuse_weight_args(name: str, args: dict[str, Any], prefix: str) -> None:
    given = [k for k in _WEIGHT_ARGS[prefix] if k in args]
    if given:
        raise ValueError(
            f"model {name!r} is built without pretrained weights (they come from the "
            f"checkpoint); remove {given} from model_args"
        )


def _import_factory(spec: str) -> Callable[..., Any]:
    """The callable named by ``"package.module:factory"`` (``factory`` may be dotted)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr or ":" in attr:
        raise ValueError(
            f"model spec must look like 'package.module:factory'; got {spec!r} "
            "(or give a registry name without ':', 'torchvision:NAME' or 'timm:NAME')"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r} for model {spec!r}: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(obj) if not n.startswith("_"))[:10]
            raise ValueError(
                f"{module_name!r} has no attribute {attr!r} for model {spec!r}; it has {public}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{spec!r} is a {type(obj).__name__}, not a callable factory")
    return obj
