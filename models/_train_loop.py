"""The training loop shared by ``train`` and ``train-pairs``: Adam (+ StepLR), model
selection on validation accuracy, a JSON-lines log and an atomic resumable state per epoch.

Files beside ``OUT.safetensors``: ``OUT.log.jsonl`` (one record per epoch, kept) and
``OUT.state.pt`` (model, optimiser, scheduler, shuffling generator, best weights so far;
written atomically after every epoch, read with ``torch.load(weights_only=True)``, removed
once the checkpoint is written).

Determinism: seeding is that of a plain PyTorch script, ``torch.manual_seed(seed)``, build
the model, then shuffle with the stream that follows; here that stream is an explicit
``torch.Generator`` (started from the global state after the build, inside
:func:`torch.random.fork_rng`) whose state is saved. Augmentation is keyed by
``(seed, epoch, index)``, and each epoch runs under a global seed derived from
``(seed, epoch)`` (restored afterwards), so an interrupted and resumed run gives the same
weights as an uninterrupted one on the same machine and thread count. Given the same initial
weights and batch order, every step is the plain recipe's computation, bit for bit
(``tests/models/test_train_ab.py``, ``benchmarks/train_ab.py``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from geomrobust._malloc import keep_freed_memory

from ._checkpoint import save_checkpoint
from ._deform import deform_kernels
from ._errors import TrainingStateError
from ._meta import CheckpointMeta
from ._train_config import TrainConfig, TrainResult, derive_seed

__all__ = ["fit", "log_path", "state_path"]

log = logging.getLogger("geomrobust")

_SUFFIX = ".safetensors"
_STATE_FORMAT = 1


class Task(Protocol):
    """What the loop needs from a kind of training (classifier or pairs)."""

    n_train: int

    def batch(self, model: nn.Module, positions: Tensor, epoch: int) -> tuple[Tensor, Tensor]:
        """Logits and targets of the training items at ``positions`` (``0..n_train-1``)."""

    def validate(self, model: nn.Module) -> dict[str, Any]:
        """Validation figures of ``model`` (eval mode, no grad); must hold ``accuracy``."""

    def final_validation(self, model: nn.Module) -> dict[str, Any]:
        """Full validation figures of the kept weights (e.g. with the scale sweep)."""


def _stem(out: Path) -> str:
    return out.name[: -len(_SUFFIX)]


def state_path(out: str | os.PathLike[str]) -> Path:
    """``OUT.state.pt`` beside ``OUT.safetensors``: the resumable state of a run."""
    out = Path(out)
    return out.with_name(_stem(out) + ".state.pt")


def log_path(out: str | os.PathLike[str]) -> Path:
    """``OUT.log.jsonl`` beside ``OUT.safetensors``: one JSON record per epoch."""
    out = Path(out)
    return out.with_name(_stem(out) + ".log.jsonl")


def _check_out(out: Path, *, resume: bool, force: bool) -> None:
    if out.suffix != _SUFFIX:
        raise ValueError(
            f"out must end in {_SUFFIX}; got {str(out)!r}. Use {str(out.with_suffix(_SUFFIX))!r}."
        )
    if resume and force:
        raise ValueError("resume and force exclude each other: resume continues, force restarts")
    state = state_path(out)
    if out.exists() and not force:
        raise FileExistsError(
            f"{out} already exists; pass force=True to overwrite it, or choose another out"
        )
    if resume and not state.exists():
        raise FileNotFoundError(
            f"nothing to resume: {state} does not exist (it is removed when a run finishes); "
            "run with resume=False to start training"
        )
    if state.exists() and not resume and not force:
        raise FileExistsError(
            f"{state} holds an interrupted run; pass resume=True to continue it or force=True "
            "to start over"
        )


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_log(path: Path, history: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in history)
    _atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def _unusable(state_file: Path, exc: BaseException) -> str:
    reason = " ".join(str(exc).split())[:200] or type(exc).__name__
    return (
        f"cannot resume from {state_file}: it is truncated, corrupt or not a training state "
        f"({type(exc).__name__}: {reason}); pass force=True to start over"
    )


def _load_state(state_file: Path) -> dict[str, Any]:
    """The saved state, with its settings parsed; anything unreadable is a
    :class:`TrainingStateError` that says to start over."""
    try:
        state = torch.load(state_file, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise TypeError(f"it holds a {type(state).__name__}, not a dict")
        state["settings"] = json.loads(state["settings"])
        if not isinstance(state["settings"], dict):
            raise TypeError("its settings are not a JSON object")
    except (
        RuntimeError,
        pickle.UnpicklingError,
        EOFError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
    ) as exc:
        raise TrainingStateError(_unusable(state_file, exc)) from None
    return state


def _same_run(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Settings that differ between a saved run and this one (``epochs`` may grow)."""
    keys = sorted(set(saved) | set(current))
    return [k for k in keys if k != "epochs" and saved.get(k) != current.get(k)]


def fit(
    model: nn.Module,
    task: Task,
    config: TrainConfig,
    *,
    shuffle: torch.Generator,
    out: str | os.PathLike[str],
    meta: CheckpointMeta,
    run_info: Mapping[str, Any],
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[Mapping[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``task`` and save the weights of the best validation epoch.

    Args:
        model: Freshly built model (weights drawn from ``config.seed``), on its device.
        task: Batches and validation (see :class:`Task`).
        config: The settings.
        shuffle: The batch-order generator (each epoch draws one ``torch.randperm``); its
            state is saved for ``resume``.
        out: ``.safetensors`` path of the checkpoint.
        meta: Class names, normalisation, data fingerprint, ...; ``training`` is filled here.
        run_info: JSON facts of the run stored in ``training`` (split, data sizes), also
            checked on resume.
        resume: Continue the run whose state is beside ``out``.
        force: Overwrite ``out`` and discard any interrupted state.
        progress: Show tqdm progress bars on stderr.
        on_epoch_end: Called with each epoch's record after the state is saved.

    Raises:
        ValueError: bad ``out`` suffix, or a resumed state from different settings or data.
        FileExistsError: ``out`` exists without ``force``, or an interrupted state exists
            without ``resume``/``force``.
        FileNotFoundError: ``resume`` without a state to resume.
    """
    out = Path(out)
    _check_out(out, resume=resume, force=force)
    if next(model.parameters()).device.type == "cpu":
        keep_freed_memory()  # exact; no page faults on every batch's activations
    state_file, log_file = state_path(out), log_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {**config.to_dict(), **run_info}

    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = None
    if config.step_gamma is not None:
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=config.step_size, gamma=config.step_gamma
        )
    history: list[dict[str, Any]] = []
    best_acc, best_epoch, best_weights = -math.inf, 0, None
    done, wall = 0, 0.0
    if resume:
        state = _load_state(state_file)
        diff = _same_run(state["settings"], settings)
        if state.get("format") != _STATE_FORMAT or diff:
            raise ValueError(
                f"{state_file} is from a run with other settings or data ({diff}); resume with "
                "the same settings (only epochs may grow), or pass force=True to start over"
            )
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(state["scheduler"])
            shuffle.set_state(state["shuffle_rng"])
            history = json.loads(state["history"])
            best_acc, best_epoch = float(state["best_acc"]), int(state["best_epoch"])
            best_weights = state["best_model"]
            model.load_state_dict(best_weights)  # checked now, not after the last epoch
            model.load_state_dict(state["model"])
            done, wall = int(state["epoch"]), float(state["wall_time_s"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise TrainingStateError(_unusable(state_file, exc)) from None
        log.info("resuming %s after epoch %d of %d", out, done, config.epochs)
    else:
        log_file.unlink(missing_ok=True)

    n_batches = math.ceil(task.n_train / config.batch_size)
    for epoch in range(done + 1, config.epochs + 1):
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(config.seed, 3, epoch))
            train_loss, train_acc = _train_epoch(
                model, task, optimizer, shuffle, config, epoch, n_batches, progress=progress
            )
            model.eval()
            with torch.no_grad():
                val = task.validate(model)
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        wall += time.perf_counter() - start
        improved = val["accuracy"] > best_acc
        if improved:
            best_acc, best_epoch = float(val["accuracy"]), epoch
            best_weights = {
                k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
            }
        record = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            **{f"val_{k}": v for k, v in val.items()},
            "best_epoch": best_epoch,
            "epoch_time_s": round(time.perf_counter() - start, 3),
            "wall_time_s": round(wall, 3),
        }
        history.append(record)
        state = {
            "format": _STATE_FORMAT,
            "settings": json.dumps(settings, sort_keys=True),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else {},
            "shuffle_rng": shuffle.get_state(),
            "history": json.dumps(history),
            "best_acc": best_acc,
            "best_epoch": best_epoch,
            "best_model": best_weights,
            "epoch": epoch,
            "wall_time_s": wall,
        }
        _atomic_write(state_file, lambda p, s=state: torch.save(s, p))
        _write_log(log_file, history)
        log.info(
            "epoch %d/%d: loss %.4f, train acc %.4f, val acc %.4f%s (%.1f s)",
            epoch,
            config.epochs,
            train_loss,
            train_acc,
            val["accuracy"],
            " *" if improved else "",
            record["epoch_time_s"],
        )
        if on_epoch_end is not None:
            on_epoch_end(record)

    model.load_state_dict(best_weights)
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        validation = task.final_validation(model)
    wall += time.perf_counter() - start
    training = {
        **settings,
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "wall_time_s": round(wall, 3),
        "threads": torch.get_num_threads(),
        "validation": validation,
    }
    param = next(model.parameters())
    kernel = deform_kernels(model, param.device, param.dtype)
    if kernel is not None:  # the deformable kernels round differently: part of the record
        training["deform_kernel"] = kernel
    fields = meta.to_dict()
    fields.update(training=training, package_version=None)
    save_checkpoint(out, model, meta=CheckpointMeta.from_dict(fields))
    state_file.unlink(missing_ok=True)
    return TrainResult(
        checkpoint=out,
        log=log_file,
        best_epoch=best_epoch,
        validation=validation,
        epochs_run=len(history),
        wall_time_s=wall,
        history=tuple(history),
    )


def _train_epoch(
    model: nn.Module,
    task: Task,
    optimizer: torch.optim.Optimizer,
    shuffle: torch.Generator,
    config: TrainConfig,
    epoch: int,
    n_batches: int,
    *,
    progress: bool,
) -> tuple[float, float]:
    model.train()
    order = torch.randperm(task.n_train, generator=shuffle)
    total_loss, correct, seen = 0.0, 0, 0
    desc = f"epoch {epoch}/{config.epochs}"
    with tqdm(
        total=n_batches, desc=desc, file=sys.stderr, disable=not progress, leave=False
    ) as bar:
        for b in range(n_batches):
            positions = order[b * config.batch_size : (b + 1) * config.batch_size]
            logits, target = task.batch(model, positions, epoch)
            loss = F.cross_entropy(logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            n = int(target.shape[0])
            total_loss += float(loss.detach()) * n
            correct += int((logits.detach().argmax(dim=1) == target).sum())
            seen += n
            bar.update()
            if b % 10 == 0 or b == n_batches - 1:
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
    return total_loss / max(seen, 1), correct / max(seen, 1)
