"""The spatial attack of Engstrom et al. (2019), per image: random, worst-of-k and grid.

For each image, inside the box of :class:`AttackConfig`:

* ``random``: one uniform draw; the image counts as correct if it is classified correctly
  under it;
* ``worst-of-k``: ``k`` uniform draws; the image is judged by the draw with the highest
  cross-entropy loss (the first on ties), as in the paper;
* ``grid``: every point of the grid; correct only if correct at every point;
* pair consistency (Zhang 2019): whether the top-1 predictions under two independent draws
  agree.

The work is image blocks, each computed with all its outcomes at once, so one process,
resumed runs and the ranks of a torchrun launch give the same per-image outcomes; an
:class:`AttackPlan` offers the interface of :class:`~geomrobust.robustness._engine.EvalPlan`
that the rank jobs use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from geomrobust.robustness._attack_config import (
    FIRST_WORST_DRAW,
    PAIR_DRAW,
    RANDOM_DRAW,
    AttackConfig,
    as_batch,
)
from geomrobust.robustness._attack_result import OUTCOMES, AttackResult, attack_result
from geomrobust.robustness._engine import (
    EvalData,
    Shard,
    ShardResult,
    _Plan,
    merge_shards,
)
from geomrobust.robustness._eval_errors import EvalInputError
from geomrobust.robustness._eval_options import EvalOptions
from geomrobust.robustness._io import PartialStore
from geomrobust.robustness._results import ModelRecord
from geomrobust.robustness._runtime import versions
from geomrobust.transforms import AffineParams
from geomrobust.transforms.datasets import FolderDataset

__all__ = ["AttackPlan", "attack"]

log = logging.getLogger("geomrobust.eval")


class AttackPlan(_Plan):
    """One attack, checked and ready to run image block by image block.

    Args:
        model, data, options, device, record, assumptions: As for
            :func:`~geomrobust.robustness.evaluate`.
        config: The box, draws and grid.
    """

    def __init__(
        self,
        model: nn.Module,
        data: EvalData,
        config: AttackConfig,
        *,
        options: EvalOptions | None = None,
        device: torch.device | str | None = None,
        record: ModelRecord | None = None,
        assumptions: Sequence[str] = (),
    ) -> None:
        if not isinstance(config, AttackConfig):
            raise EvalInputError(f"config must be an AttackConfig; got {type(config).__name__}")
        self.config = config
        self.rows = OUTCOMES
        self.label = f"attack {config.preset or 'custom'}"
        self._setup(model, data, options, device, record, assumptions)
        self.size: tuple[int, int] | None = None  # (H, W) seen by the model

    def partial_key(self) -> dict[str, Any]:
        return {"attack": self.config.to_dict(), **self._common_key()}

    def check_piece(self, row: int | str, values: np.ndarray) -> str | None:
        """What is wrong with a saved outcome row, or ``None``: int64 values >= -1, and for
        the four prediction rows class indices."""
        if values.ndim != 1 or values.dtype != np.int64:
            return f"shape {values.shape} {values.dtype}, expected (n,) int64"
        high = self.data.num_classes if isinstance(row, int) and row < 4 else 2**31
        if values.size and (values.min() < -1 or values.max() >= high):
            return f"values in [{values.min()}, {values.max()}], outside [-1, {high})"
        return None

    def run(
        self,
        shards: Iterable[Shard],
        *,
        store: PartialStore | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[list[ShardResult], int]:
        """The outcomes of each shard, from ``store`` where every outcome of its block is
        saved, else computed (a block at a time, each image decoded once) and saved.

        Returns:
            The shard results in the order given, and how many were computed.
        """
        shards = list(shards)
        blocks: dict[tuple[int, int], list[int]] = {}
        for i, s in enumerate(shards):
            blocks.setdefault((s.start, s.stop), []).append(i)
        found: dict[tuple[int, int], np.ndarray] = {}
        pending = []
        for start, stop in blocks:
            saved = [None if store is None else store.lookup(r, start, stop) for r in range(6)]
            if all(v is not None for v in saved):
                found[(start, stop)] = np.stack(saved)
                if progress is not None:
                    progress(stop - start)
            else:
                pending.append((start, stop))
        with torch.inference_mode():
            for (start, stop), outcomes in self._compute(pending, progress):
                found[(start, stop)] = outcomes
                if store is not None:
                    for r in range(len(self.rows)):
                        store.save_piece(r, start, stop, outcomes[r])
        computed = sum(len(blocks[b]) for b in pending)
        results = []
        for s in shards:
            pred = found[(s.start, s.stop)][s.row]
            results.append(ShardResult(s, pred, 0, np.zeros((0, 0), dtype=np.int64)))
        return results, computed

    def _compute(self, blocks: list[tuple[int, int]], progress):
        """``((start, stop), (6, stop - start) outcomes)`` of each block, in order."""
        if not blocks:
            return
        current = 0
        out = np.full((len(self.rows), blocks[0][1] - blocks[0][0]), -1, dtype=np.int64)
        for batch in self.runner.batches(blocks):
            while batch.start >= blocks[current][1]:
                yield blocks[current], out
                current += 1
                start, stop = blocks[current]
                out = np.full((len(self.rows), stop - start), -1, dtype=np.int64)
            lo = batch.start - blocks[current][0]
            if batch.images is not None:
                x = self.runner.to_device(batch)
                labels = self.data.labels[batch.start : batch.stop].to(x.device)

                def piece(a: int, b: int, x=x, labels=labels, out=out, lo=lo, start=batch.start):
                    idx = np.arange(start + a, start + b, dtype=np.int64)
                    out[:, lo + a : lo + b] = self._outcomes(x[a:b], labels[a:b], idx)

                self.runner.pieces(x, piece)
                if batch.ok is not None:
                    out[0, lo : lo + batch.stop - batch.start][~batch.ok.numpy()] = -1
            if progress is not None:
                progress(batch.stop - batch.start)
        yield blocks[current], out

    def _outcomes(self, x: torch.Tensor, labels: torch.Tensor, idx: np.ndarray) -> np.ndarray:
        """``(6, B)``: predictions clean, random, pair, at the worst draw; the worst draw's
        number; the first failing grid point (-1: none)."""
        cfg, run = self.config, self.runner
        h, w = x.shape[-2:]
        self.size = (int(h), int(w))
        pad = cfg.canvas_pad

        def predict(params) -> torch.Tensor:
            return run.labels_of(run.logits(x, params, canvas_pad=pad))

        clean = run.labels_of(run.logits(x, AffineParams()))
        random = predict(as_batch(cfg.draws(idx, RANDOM_DRAW, h, w), x))
        pair = predict(as_batch(cfg.draws(idx, PAIR_DRAW, h, w), x))
        targets = run.output_of(labels)
        best_loss = torch.full((x.shape[0],), -torch.inf, device=x.device)
        best_pred = torch.zeros_like(labels)
        best_draw = torch.zeros_like(labels)
        for j in range(cfg.k):
            params = as_batch(cfg.draws(idx, FIRST_WORST_DRAW + j, h, w), x)
            logits = run.logits(x, params, canvas_pad=pad)
            loss = F.cross_entropy(logits.float(), targets, reduction="none")
            better = loss > best_loss
            best_loss = torch.where(better, loss, best_loss)
            best_pred = torch.where(better, run.labels_of(logits), best_pred)
            best_draw = torch.where(better, torch.full_like(best_draw, j), best_draw)
        first_fail = torch.full_like(labels, -1)
        active = torch.arange(x.shape[0], device=x.device)  # images with no failure yet
        xa, la = x, labels
        for g, point in enumerate(cfg.grid_points(h, w)):
            wrong = run.labels_of(run.logits(xa, point, canvas_pad=pad)) != la
            if bool(wrong.any()):  # later points are only run on the images still correct
                first_fail[active[wrong]] = g
                keep = ~wrong
                active, xa, la = active[keep], xa[keep], la[keep]
                if active.numel() == 0:
                    break
        rows = (clean, random, pair, best_pred, best_draw, first_fail)
        return torch.stack([r.to(torch.int64) for r in rows]).cpu().numpy()

    def result(
        self, outcomes: np.ndarray, *, run: Mapping[str, Any], probs: Any = None
    ) -> AttackResult:
        """The result from ``(6, N)`` outcomes (:func:`merge_shards`)."""
        size = self.size or _image_size(self.data, self.options)
        return attack_result(
            outcomes,
            labels=self.labels,
            files=getattr(self.data, "files", None),
            config=self.config,
            size=size,
            model=self.record,
            data=self.data_record,
            transform=self.transform,
            preprocess=self.preprocess,
            versions=versions(),
            assumptions=self.assumptions,
            run=run,
        )


def _image_size(data: EvalData, options: EvalOptions) -> tuple[int, int]:
    """``(H, W)`` the model sees, when no batch was computed here (all resumed)."""
    pre = options.preprocess
    if isinstance(data, FolderDataset):
        if pre.crop is not None:
            return pre.crop
        first = data.decode([0], preprocess=pre)
        return int(first.shape[-2]), int(first.shape[-1])
    return pre.output_size(*data.images.shape[-2:])


def attack(
    model: nn.Module,
    data: EvalData,
    config: AttackConfig,
    *,
    options: EvalOptions | None = None,
    device: torch.device | str | None = None,
    record: ModelRecord | None = None,
    assumptions: Sequence[str] = (),
    partial: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
) -> AttackResult:
    """Attack every image of ``data`` (see the module docstring).

    Args:
        model: A classifier in eval mode; not moved.
        data: An ``ImageDataset`` or ``FolderDataset``.
        config: The box, ``k``, grid, canvas padding and seed (:func:`attack_preset`).
        options: Normalisation, interpolation, fill, batch size, preprocessing, workers.
        device, record, assumptions, partial, resume, progress: As for
            :func:`~geomrobust.robustness.evaluate` (``progress`` counts images).

    Returns:
        An :class:`AttackResult`.
    """
    plan = AttackPlan(
        model, data, config, options=options, device=device, record=record, assumptions=assumptions
    )
    store = None
    if partial is not None:
        store = PartialStore(partial, plan.partial_key(), plan.n_images, check=plan.check_piece)
        store.start(resume=resume)
    started = time.perf_counter()
    shards = plan.shards()
    results, computed = plan.run(shards, store=store, progress=progress)
    outcomes = merge_shards(results, n_rows=len(plan.rows), n_images=plan.n_images)
    run = plan.run_record(
        shards=len(shards),
        shards_computed=computed,
        shards_resumed=len(shards) - computed,
        elapsed_s=round(time.perf_counter() - started, 3),
    )
    return plan.result(outcomes, run=run)
