"""Checkpoints: one ``.safetensors`` file with the weights and a :class:`CheckpointMeta`.

Loading never unpickles arbitrary objects: ``.safetensors`` files hold only tensors and
strings, and PyTorch files are read with ``torch.load(weights_only=True)``, which refuses
any pickled object other than tensors and plain containers. Code named in a file's metadata
(a ``package.module:factory`` architecture) is imported only when the caller names it too;
``torchvision:NAME`` and ``timm:NAME`` architectures are built by those libraries, never with
downloaded weights.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from ._checkpoint_files import read_checkpoint, weights_sha256
from ._errors import (
    CheckpointClassCountError,
    CheckpointError,
    CheckpointMetadataError,
    CheckpointMismatchError,
)
from ._factories import factory, is_registry_name, is_user_spec
from ._meta import SHA_KEY, CheckpointMeta, package_version
from ._registry import build_model, get_model_info, list_models, model_spec

__all__ = ["load_checkpoint", "save_checkpoint"]

_SHOW = 4  # keys listed per kind of mismatch
_STANDARD_ARGS = ("in_channels", "num_classes", "input_size")


def save_checkpoint(
    path: str | os.PathLike[str], model: nn.Module, *, meta: CheckpointMeta | None = None
) -> Path:
    """Write ``model``'s state dict and ``meta`` to one ``.safetensors`` file.

    The write is atomic (a temporary file renamed into place); parent folders are created.

    Args:
        path: Destination; must end in ``.safetensors``.
        model: The model. If :func:`build_model` made it, ``meta.model_name``,
            ``meta.model_args`` and ``meta.input_shape`` default to how it was built.
        meta: Class names, normalisation, data fingerprint, training settings...;
            ``package_version`` is always set to the running geomrobust's.

    Returns:
        The path written.

    Raises:
        CheckpointError: the suffix is wrong, the architecture is unknown (a model not made
            by :func:`build_model` needs ``meta.model_name``), or ``meta`` disagrees with
            how the model was built.
        TypeError: ``model`` is not an ``nn.Module`` or ``meta`` not a ``CheckpointMeta``.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(
            f"checkpoint path must end in .safetensors; got {str(path)!r}. "
            f"Use {str(path.with_suffix('.safetensors'))!r}.",
            path=path,
        )
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    meta = CheckpointMeta() if meta is None else meta
    if not isinstance(meta, CheckpointMeta):
        raise TypeError(f"meta must be a CheckpointMeta; got {type(meta).__name__}")
    fields = meta.to_dict()
    spec = model_spec(model)
    if spec is not None and meta.model_name in (None, spec[0]):
        try:
            built = dict(CheckpointMeta(model_args=spec[1]).model_args)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"cannot save {path}: {exc}", path=path) from exc
        if meta.model_args and dict(meta.model_args) != built:
            raise CheckpointError(
                f"meta.model_args {fields['model_args']} disagree with how the model was "
                f"built ({built}); leave meta.model_args empty to use the latter",
                path=path,
            )
        fields["model_name"], fields["model_args"] = spec[0], built
    if fields["model_name"] is None:
        raise CheckpointError(
            "meta.model_name is required for a model not made by build_model: give the "
            "registry name, 'torchvision:NAME', 'timm:NAME' or 'package.module:factory' (and "
            "meta.model_args) that rebuilds it",
            path=path,
        )
    name, args = fields["model_name"], fields["model_args"]
    if fields["input_shape"] is None and is_registry_name(name) and name in list_models():
        fields["input_shape"] = list(get_model_info(name, **args).input_shape)
    fields["package_version"] = package_version()
    try:
        final = CheckpointMeta.from_dict(fields)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"cannot save {path}: {exc}", path=path) from exc

    tensors: dict[str, Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for key, value in model.state_dict().items():
        if value.device.type == "meta":
            raise CheckpointError(f"cannot save {key!r}: it is on the meta device (no data)")
        t = value.detach().to("cpu").contiguous()
        storage = (t.untyped_storage().data_ptr(), t.storage_offset())
        if storage in seen:  # safetensors refuses shared memory: store tied weights twice
            t = t.clone()
        seen.add((t.untyped_storage().data_ptr(), t.storage_offset()))
        tensors[key] = t
    metadata = final.to_metadata()
    metadata[SHA_KEY] = weights_sha256(tensors)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: str | nn.Module | None = None,
    model_args: Mapping[str, Any] | None = None,
    num_classes: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[nn.Module, CheckpointMeta]:
    """Rebuild a model and load its weights, without unpickling arbitrary objects.

    Args:
        path: A ``.safetensors`` file from :func:`save_checkpoint` (rebuilds itself), a
            ``.safetensors`` file from elsewhere, or a PyTorch ``.pt``/``.pth`` state dict
            (both need ``model``). The format is detected from the content. A PyTorch file
            may wrap the state dict as ``{"state_dict": ...}`` (or ``"model_state_dict"``,
            ``"model"``); in files without metadata, a ``"module."`` (``DataParallel``,
            DDP) or ``"_orig_mod."`` (``torch.compile``) prefix on every key is dropped,
            also both. ``meta.unwrapped`` says what was.
        model: ``None`` (use the metadata), a registry name, ``"torchvision:NAME"``
            (``torchvision.models.get_model(NAME, weights=None, **model_args)``),
            ``"timm:NAME"`` (``timm.create_model(NAME, pretrained=False, **model_args)``;
            needs ``pip install 'geomrobust[timm]'``), ``"package.module:factory"``
            (imported and called with ``model_args``; the caller's own code), or a module
            to load the weights into (not moved; its device and dtype are kept).
        model_args: Build arguments that override (or, without metadata, give) those in
            the file, e.g. ``{"num_classes": 10}`` for a torchvision or timm model (their
            default is 1000 classes).
        num_classes: The dataset's class count; a checkpoint with another raises
            :class:`CheckpointClassCountError`. Without metadata it is also the class
            count to build.
        device: Device of the rebuilt model (default: the current default device).
        dtype: Floating dtype of the rebuilt model (default: the file's weights cast to the
            default dtype).

    Returns:
        ``(model, meta)``: the model in eval mode, and the file's metadata (for a file
        without metadata, what is known: the architecture and its build arguments), with
        ``meta.unwrapped`` naming the wrapper key and prefixes that were removed.

    Raises:
        CheckpointNotFoundError: no such file.
        CheckpointFormatError: truncated, corrupt (checksum), or not a checkpoint.
        UnsafeCheckpointError: a pickle with objects other than tensors (nothing was run).
        CheckpointMetadataError: no metadata and no ``model``; bad metadata; or the file
            names a ``package.module:factory`` that the caller did not name.
        ValueError: an unknown ``torchvision:``/``timm:`` name (the message lists close
            matches), timm not installed, or a bad ``package.module:factory``.
        CheckpointMismatchError: weight names or shapes do not fit the architecture.
        CheckpointClassCountError: the class count disagrees with ``num_classes``.
    """
    path = Path(path)
    tensors, meta, unwrapped = read_checkpoint(path)
    saved_classes = meta.num_classes if meta is not None else None
    if num_classes is not None and saved_classes not in (None, num_classes):
        names = f" ({', '.join(meta.class_names[:5])}...)" if meta.class_names else ""
        raise CheckpointClassCountError(
            f"{path} predicts {saved_classes} classes{names} but the dataset has "
            f"{num_classes}; use a checkpoint trained on this dataset",
            path=path,
            checkpoint_classes=saved_classes,
            expected=num_classes,
        )
    if isinstance(model, nn.Module):
        given = {"model_args": model_args, "device": device, "dtype": dtype}
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise TypeError(
                f"{', '.join(extra)} apply only when load_checkpoint builds the model; with "
                "model=<module> the weights load into it as it is (move it yourself)"
            )
        net = model
        if meta is None:
            spec = model_spec(model)
            meta = CheckpointMeta(*spec) if spec else CheckpointMeta()
    else:
        name, args = _build_args(path, model, model_args, meta, num_classes)
        if not is_user_spec(name):
            _check_on_meta(path, name, args, tensors, meta, num_classes=num_classes)
        net = _build(path, name, args, device=device, dtype=dtype)
        if meta is None:
            shape = None
            if is_registry_name(name):
                shape = get_model_info(name, **args).input_shape
            meta = CheckpointMeta(name, args, input_shape=shape)
    _check_fit(path, tensors, net, num_classes=num_classes)
    net.load_state_dict(tensors, strict=True)
    net.eval()
    if unwrapped:
        meta = dataclasses.replace(meta, unwrapped=unwrapped)
    return net, meta


def _build_args(
    path: Path,
    model: str | None,
    model_args: Mapping[str, Any] | None,
    meta: CheckpointMeta | None,
    num_classes: int | None,
) -> tuple[str, dict[str, Any]]:
    """The architecture to build and its arguments, from the caller and the metadata."""
    if model is not None and not isinstance(model, str):
        raise TypeError(
            "model must be a registry name, 'torchvision:NAME', 'timm:NAME', "
            f"'package.module:factory' or an nn.Module; "
            f"got {type(model).__name__}"
        )
    if model_args is not None and not isinstance(model_args, Mapping):
        raise TypeError(f"model_args must be a dict; got {type(model_args).__name__}")
    saved = meta.model_name if meta is not None else None
    if model is None:
        if saved is None:
            raise CheckpointMetadataError(
                f"{path} does not say which architecture it holds (no geomrobust metadata); "
                "pass model='NAME' with a registry name, 'torchvision:NAME', 'timm:NAME' or "
                "'package.module:factory'",
                path=path,
            )
        if is_user_spec(saved):
            raise CheckpointMetadataError(
                f"{path} was saved from the user architecture {saved!r}; geomrobust does not "
                f"import code named in a file. If you trust it, pass model={saved!r}",
                path=path,
            )
        model = saved
    args: dict[str, Any] = {}
    if meta is not None and model == saved:
        args = dict(meta.model_args)
    elif (
        meta is not None
        and is_registry_name(model)
        and saved is not None
        and is_registry_name(saved)
    ):
        args = {k: v for k, v in meta.model_args.items() if k in _STANDARD_ARGS}
    args.update(model_args or {})
    if meta is None and num_classes is not None and is_registry_name(model):
        args.setdefault("num_classes", num_classes)
    return model, args


def _build(path: Path, name: str, args: dict[str, Any], *, device: Any, dtype: Any) -> nn.Module:
    if is_registry_name(name):
        try:
            return build_model(name, device=device, dtype=dtype, **args)
        except (TypeError, ValueError) as exc:
            raise CheckpointMetadataError(
                f"cannot build model {name!r} with {args} for {path}: {exc}", path=path
            ) from exc
    make = factory(name, args)
    if is_user_spec(name):
        net = make()
    else:
        try:
            net = make()
        except TypeError as exc:  # an argument the architecture does not take
            raise CheckpointMetadataError(
                f"cannot build model {name!r} with model_args={args} for {path}: {exc}",
                path=path,
            ) from exc
    if not isinstance(net, nn.Module):
        raise TypeError(f"factory {name!r} returned {type(net).__name__}, not an nn.Module")
    if device is not None or dtype is not None:
        net = net.to(device=device, dtype=dtype)
    return net


def _check_on_meta(
    path: Path,
    name: str,
    args: dict[str, Any],
    tensors: Mapping[str, Tensor],
    meta: CheckpointMeta | None,
    *,
    num_classes: int | None,
) -> None:
    """Build the architecture on the ``meta`` device (no memory) and check the file's tensor
    names and shapes against it before building it for real: metadata that asks for an
    absurd size (``in_channels: 100000000``) is refused instead of allocated. The file's
    tensors are the truth; the message names the metadata field that disagrees."""
    with torch.device("meta"):
        skeleton = _build(path, name, args, device=None, dtype=None)
    try:
        _check_fit(path, tensors, skeleton, num_classes=num_classes)
    except CheckpointClassCountError:
        raise
    except CheckpointMismatchError as exc:
        if meta is None or meta.model_name != name:
            raise
        raise CheckpointMismatchError(
            f"{path}: its metadata field model_args {dict(meta.model_args)} disagrees with "
            f"the tensors the file holds (the file is the truth): {exc}",
            path=path,
            missing=exc.missing,
            unexpected=exc.unexpected,
            mismatched=exc.mismatched,
        ) from None


def _check_fit(
    path: Path, tensors: Mapping[str, Tensor], net: nn.Module, *, num_classes: int | None
) -> None:
    """Raise unless the file's names and shapes are exactly the model's."""
    expected = net.state_dict()
    missing = tuple(k for k in expected if k not in tensors)
    unexpected = tuple(k for k in tensors if k not in expected)
    mismatched = tuple(
        (k, tuple(tensors[k].shape), tuple(expected[k].shape))
        for k in expected
        if k in tensors and tensors[k].shape != expected[k].shape
    )
    if not (missing or unexpected or mismatched):
        return
    head = _head_keys(net)
    if (
        not missing
        and not unexpected
        and {k for k, _, _ in mismatched} <= head
        and all(a[1:] == b[1:] for _, a, b in mismatched)
    ):
        file_classes, model_classes = mismatched[0][1][0], mismatched[0][2][0]
        expected = model_classes
        if num_classes in (None, file_classes):  # the build arguments are wrong, not the file
            message = (
                f"{path} predicts {file_classes} classes but the model was built for "
                f"{model_classes}; pass model_args={{'num_classes': {file_classes}}} to build "
                "it for the checkpoint's classes"
            )
        else:
            expected = num_classes
            built = f" (and the model was built for {model_classes})"
            message = (
                f"{path} predicts {file_classes} classes but the dataset has {num_classes}"
                f"{built if model_classes != num_classes else ''}; use a checkpoint trained "
                "on this dataset"
            )
        raise CheckpointClassCountError(
            message,
            path=path,
            checkpoint_classes=file_classes,
            expected=expected,
        )
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s), e.g. {list(missing[:_SHOW])}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s), e.g. {list(unexpected[:_SHOW])}")
    if mismatched:
        shown = ", ".join(f"{k}: file {a} vs model {b}" for k, a, b in mismatched[:_SHOW])
        parts.append(f"{len(mismatched)} shape mismatch(es), e.g. {shown}")
    hint = "check the model name and its options (in_channels, num_classes, ...)"
    if missing and all(".offset_conv." in k or ".mask_conv." in k for k in missing):
        hint = "the file looks like the regular twin's weights; load it with the regular model"
    elif unexpected and all(".offset_conv." in k or ".mask_conv." in k for k in unexpected):
        hint = "the file looks like a deformable twin's weights; load it with the DCN model"
    raise CheckpointMismatchError(
        f"{path} does not fit the architecture {type(net).__name__}: {'; '.join(parts)}. "
        f"Hint: {hint}",
        path=path,
        missing=missing,
        unexpected=unexpected,
        mismatched=mismatched,
    )


def _head_keys(net: nn.Module) -> set[str]:
    """State-dict keys of the last ``nn.Linear`` (the classification head)."""
    last = None
    for name, module in net.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        return set()
    prefix = f"{last}." if last else ""
    return {prefix + "weight", prefix + "bias"}
