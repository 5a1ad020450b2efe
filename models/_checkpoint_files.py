"""Reading checkpoint files: existence, format sniffing, integrity, safe unpickling.

``.safetensors`` files are parsed by safetensors (tensors and strings only); PyTorch files
by ``torch.load(weights_only=True)``, which refuses any pickled object other than tensors
and plain containers, so reading a file never runs code from it.

State dicts saved by common trainers load without hand editing: a training state that wraps
the weights under ``"state_dict"``, ``"model_state_dict"`` or ``"model"`` is unwrapped, and a
prefix on every key from ``DataParallel``/DDP (``"module."``) or ``torch.compile``
(``"_orig_mod."``), in either order, is dropped (from ``.safetensors`` files too, unless
geomrobust wrote them). What was removed is reported, in order.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import safetensors
import torch
from torch import Tensor

from ._errors import (
    CheckpointFormatError,
    CheckpointMetadataError,
    CheckpointNotFoundError,
    UnsafeCheckpointError,
)
from ._meta import SHA_KEY, CheckpointMeta

__all__ = ["CheckpointFile", "read_checkpoint", "read_checkpoint_file", "weights_sha256"]

_WRAPPERS = ("state_dict", "model_state_dict", "model")
_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP, torch.compile


class CheckpointFile(NamedTuple):
    """What a checkpoint file holds.

    Attributes:
        tensors: The state dict, unwrapped and with trainer prefixes dropped.
        meta: geomrobust metadata, or ``None`` for a file without it.
        unwrapped: What was removed to get ``tensors``, in order, e.g.
            ``("state_dict key 'state_dict'", "prefix 'module.'")``.
    """

    tensors: dict[str, Tensor]
    meta: CheckpointMeta | None
    unwrapped: tuple[str, ...] = ()


def weights_sha256(tensors: Mapping[str, Tensor]) -> str:
    """sha256 over ``name, dtype, shape, bytes`` of every tensor, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def read_checkpoint_file(path: Path) -> tuple[dict[str, Tensor], CheckpointMeta | None]:
    """Tensors and metadata of a checkpoint file, after checking it exists and is intact."""
    tensors, meta, _ = read_checkpoint(path)
    return tensors, meta


def read_checkpoint(path: Path) -> CheckpointFile:
    """:func:`read_checkpoint_file` and what was unwrapped or stripped to get the tensors."""
    if not path.exists():
        folder = path.parent
        hint = f"; the folder {folder} does not exist either" if not folder.is_dir() else ""
        if not hint:
            near = sorted(p.name for p in folder.iterdir() if p.name.startswith(path.stem))[:5]
            hint = f"; in {folder} there is {near}" if near else ""
        raise CheckpointNotFoundError(f"no checkpoint file at {path}{hint}", path=path)
    if path.is_dir():
        raise CheckpointNotFoundError(f"{path} is a folder, not a checkpoint file", path=path)
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except PermissionError:
        raise CheckpointFormatError(f"cannot read {path}: permission denied", path=path) from None
    if not head:
        raise CheckpointFormatError(f"{path} is empty (0 bytes); re-save or re-copy it", path=path)
    if len(head) > 8 and head[8:9] == b"{":
        tensors, meta = _read_safetensors(path)
        if meta is not None:  # written by save_checkpoint: keys are the model's own
            return CheckpointFile(tensors, meta)
        tensors, stripped = _strip_prefixes(tensors)
        return CheckpointFile(tensors, None, stripped)
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        tensors, unwrapped = _read_torch(path)
        return CheckpointFile(tensors, None, unwrapped)
    raise CheckpointFormatError(
        f"{path} is neither a safetensors nor a PyTorch file (it starts with {head[:8]!r})",
        path=path,
    )


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], CheckpointMeta | None]:
    try:
        with safetensors.safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (safetensors.SafetensorError, OSError, RuntimeError) as exc:
        raise CheckpointFormatError(
            f"{path} is truncated or corrupt (safetensors: {exc}); re-save or re-copy it",
            path=path,
        ) from None
    recorded = metadata.get(SHA_KEY)
    if recorded is not None and recorded != weights_sha256(tensors):
        raise CheckpointFormatError(
            f"{path} is corrupt: its weights do not match the sha256 checksum recorded when "
            "it was saved; re-save or re-copy it",
            path=path,
        )
    try:
        meta = CheckpointMeta.from_metadata(metadata)
    except (TypeError, ValueError) as exc:
        raise CheckpointMetadataError(
            f"{path}: bad geomrobust metadata: {exc}", path=path
        ) from None
    return tensors, meta


def _read_torch(path: Path) -> tuple[dict[str, Tensor], tuple[str, ...]]:
    """The state dict of a PyTorch file and what was unwrapped or stripped to get it."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" (it asks for {found.group(1)})" if found else ""
        raise UnsafeCheckpointError(
            f"refused to load {path}: it pickles Python objects other than tensors{what}, and "
            "unpickling them could run arbitrary code; nothing was run. If you trust the "
            "file, load it yourself, then save its state_dict() with torch.save or, better, "
            "with save_checkpoint as .safetensors",
            path=path,
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointFormatError(
            f"{path} is truncated or corrupt (torch.load: {reason}); re-save or re-copy it",
            path=path,
        ) from None
    unwrapped: tuple[str, ...] = ()
    if isinstance(obj, Mapping):
        for key in _WRAPPERS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                unwrapped = (f"state_dict key {key!r}",)
                break
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    ):
        shown = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointFormatError(
            f"{path} does not hold a state_dict (a dict of name -> tensor); found {shown}. "
            "Save model.state_dict(), not the model or a training state",
            path=path,
        )
    state, stripped = _strip_prefixes(dict(obj))
    return state, unwrapped + stripped


def _strip_prefixes(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], tuple[str, ...]]:
    """``state`` without the trainer prefixes that every key starts with, and which they were
    (``module._orig_mod.`` and ``_orig_mod.module.`` give two)."""
    stripped: list[str] = []
    while state and len(stripped) < 2 * len(_PREFIXES):
        prefix = next((p for p in _PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None:
            break
        state = {k[len(prefix) :]: v for k, v in state.items()}
        stripped.append(f"prefix {prefix!r}")
    return state, tuple(stripped)
