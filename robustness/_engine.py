"""The evaluation engine: one model, one split, every point of a sweep.

The work is ``rows × images``: the sweep's points, plus the identity when the sweep lacks it
(clean accuracy is always evaluated). It splits into :class:`Shard` units, a row and a range
of images, each a pure function of the model and the data, so shards run in any order or on
any rank give the same predictions, and :func:`merge_shards` puts counts, confusion matrices
and predictions back together exactly. :func:`evaluate` runs the rows one after another in
batches of images: memory holds one batch of warped images, whatever the number of points.
An :class:`EvalPlan` is the checked evaluation that both :func:`evaluate` and the ranks of a
distributed run (:mod:`geomrobust.robustness._distributed`) run shard by shard.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from geomrobust.robustness._eval_errors import EvalInputError
from geomrobust.robustness._eval_options import EvalOptions
from geomrobust.robustness._forward import ModelForward, Passes
from geomrobust.robustness._io import PartialStore
from geomrobust.robustness._metrics import confusion_matrix
from geomrobust.robustness._results import (
    DataRecord,
    EvalResult,
    ModelRecord,
    Predictions,
    summarise,
)
from geomrobust.robustness._runtime import model_device_dtype, model_in_channels, versions
from geomrobust.transforms import AffineBatch, AffineParams, Sweep, get_sweep, warp
from geomrobust.transforms.datasets import Batch, FolderDataset, ImageDataset

EvalData = ImageDataset | FolderDataset

__all__ = [
    "EvalOptions",
    "EvalPlan",
    "Shard",
    "ShardResult",
    "evaluate",
    "merge_probs",
    "merge_shards",
    "plan_shards",
    "run_shard",
    "work_rows",
]

log = logging.getLogger("geomrobust.eval")

CPU_PASS_BYTES = 12 << 20
"""Largest batch of images (bytes) one forward pass holds on CPU; results do not depend on
it."""

STREAM_BLOCK_BATCHES = 16
"""Batches per block of a streamed dataset: the unit of work saved for ``resume``."""


@dataclass(frozen=True)
class Shard:
    """One unit of work: row ``row`` (see :func:`work_rows`) on images ``[start, stop)``."""

    row: int
    start: int
    stop: int


@dataclass(frozen=True, eq=False)
class ShardResult:
    """Predictions of one shard, with its counts.

    Attributes:
        shard: The unit.
        predictions: ``(stop - start,)`` int64 predicted classes.
        correct: Images classified correctly.
        confusion: ``(K, K)`` int64 counts ``[true, predicted]`` of the shard's images.
        probs: ``(stop - start, 3)`` float32 probabilities of the true, the predicted and
            the clean top-1 class (``PROB_FIELDS``), or ``None``.
    """

    shard: Shard
    predictions: np.ndarray
    correct: int
    confusion: np.ndarray
    probs: np.ndarray | None = None


def work_rows(sweep: Sweep) -> tuple[tuple[AffineParams, ...], int]:
    """The rows to evaluate and the index of the clean (identity) row among them.

    The sweep's points come first, in order; the identity is appended when the sweep lacks
    it.
    """
    rows = tuple(sweep.points)
    identity = sweep.identity_index
    if identity is None:
        return (*rows, AffineParams()), len(rows)
    return rows, identity


def plan_shards(
    n_rows: int, n_images: int, *, images_per_shard: int, image_major: bool = False
) -> tuple[Shard, ...]:
    """Split ``n_rows × n_images`` into shards of at most ``images_per_shard`` images.

    Shards are listed row by row, or, with ``image_major``, image range by image range (all
    rows of a range together, so a streamed dataset decodes each range once); any subset
    can run anywhere and :func:`merge_shards` reassembles the full set.
    """
    if images_per_shard < 1:
        raise ValueError(f"images_per_shard must be >= 1; got {images_per_shard}")
    starts = range(0, n_images, images_per_shard)
    if image_major:
        pairs = ((row, start) for start in starts for row in range(n_rows))
    else:
        pairs = ((row, start) for row in range(n_rows) for start in starts)
    return tuple(Shard(row, start, min(start + images_per_shard, n_images)) for row, start in pairs)


def _images_channels(data: Any) -> int:
    return int(data.channels)


class _Runner:
    """Prepared state for predicting the rows of a sweep on batches of images."""

    def __init__(self, model: nn.Module, data: EvalData, options: EvalOptions, device: Any):
        self.model = model
        self.data = data
        self.device, self.dtype = model_device_dtype(model, device)
        c = _images_channels(data)
        self.options = options
        self.num_classes = data.num_classes
        self.output_index = data.output_index
        self.output_map: Tensor | None = None

        def channel_tensor(values: tuple[float, ...] | None, name: str) -> Tensor | None:
            if values is None:
                return None
            if len(values) not in (1, c):
                raise EvalInputError(
                    f"{name} has {len(values)} values; the images have {c} channel(s): give "
                    "one per channel or one for all"
                )
            return torch.tensor(values, dtype=self.dtype, device=self.device).view(1, -1, 1, 1)

        self.mean = channel_tensor(options.mean, "mean")
        self.std = channel_tensor(options.std, "std")
        fill = options.fill_values()
        channel_tensor(fill, "fill")
        self.fill = list(fill) if fill is not None else None
        self.padding = "zeros" if fill is None else "constant"
        self.checked = False
        self.nonfinite_logits = False
        self._finite: Tensor | None = None
        self.forward = ModelForward(model, self.device, options.forward_options())
        self.passes = Passes()
        self.pin_memory = self.device.type == "cuda"

    def batches(self, ranges: Sequence[tuple[int, int]]) -> Iterable[Batch]:
        """The data's batches of ``ranges``, decoded once (see ``batches`` of the datasets)."""
        return self.data.batches(
            ranges,
            batch_size=self.options.batch_size,
            preprocess=self.options.preprocess,
            workers=self.options.workers,
            pin_memory=self.pin_memory,
        )

    def to_device(self, batch: Batch) -> Tensor | None:
        if batch.images is None:
            return None
        return batch.images.to(self.device, self.dtype, non_blocking=True)

    def pieces(self, x: Tensor | None, fn: Callable[[int, int], None]) -> None:
        """Call ``fn(a, b)`` on the forward passes ``x[a:b]`` of a batch: on CPU, at most
        :data:`CPU_PASS_BYTES` of images each (fresh allocations above glibc's mmap
        threshold page-fault on every pass, measured 1.8x slower for 224×224 batches of
        64), else the whole batch; halved for good after an out-of-memory error."""
        if x is None or x.shape[0] == 0:
            return
        n = x.shape[0]
        if self.device.type == "cpu":
            per = max(1, CPU_PASS_BYTES // max(1, x[0].numel() * x.element_size()))
            if self.passes.limit is None or per < self.passes.limit:
                self.passes.limit = per
        self.passes.run(0, n, fn)
        self._check_finite()

    def predict(self, point: AffineParams, x: Tensor) -> Tensor:
        """``(B,)`` int64 predictions (labels of the data) of ``x`` under ``point``; ``x``
        is not modified."""
        return self.labels_of(self.logits(x, point))

    def logits(
        self, x: Tensor, params: AffineParams | AffineBatch, *, canvas_pad: int = 0
    ) -> Tensor:
        """The model's ``(B, outputs)`` logits of ``x`` warped by ``params`` (one point for
        the batch, or one per image), then normalised; ``x`` is not modified.

        ``canvas_pad`` warps on a canvas padded by that many pixels on every side (with
        the fill) and crops the centre back, as the published CIFAR spatial attack does.
        """
        identity = isinstance(params, AffineParams) and params.is_identity
        fresh = False
        if not identity:
            h, w = x.shape[-2:]
            canvas = x
            if canvas_pad:
                p = canvas_pad
                canvas = F.pad(x, (p, p, p, p))
                if self.fill is not None:  # the constant fill, per channel
                    inside = F.pad(torch.ones_like(x[:1, :1]), (p, p, p, p))
                    fill = torch.tensor(self.fill, dtype=x.dtype, device=x.device)
                    canvas = canvas + (1 - inside) * fill.view(1, -1, 1, 1)
            x = warp(
                canvas,
                params,
                interpolation=self.options.interpolation,
                padding=self.padding,
                fill=self.fill,
            )
            if canvas_pad:
                x = x[..., canvas_pad : canvas_pad + h, canvas_pad : canvas_pad + w]
            fresh = True
        if self.mean is not None:
            x = x.sub_(self.mean) if fresh else x - self.mean
            x = x.div_(self.std)
        logits = self.forward(x)
        if not self.checked:
            self._check_logits(logits, x.shape[0])
        finite = torch.isfinite(logits).all()  # read once per batch: no device sync here
        self._finite = finite if self._finite is None else self._finite & finite
        return logits

    def _check_finite(self) -> None:
        """Warn (once) if logits since the last check were not finite."""
        if self._finite is not None and not self.nonfinite_logits and not bool(self._finite):
            self.nonfinite_logits = True
            log.warning(
                "warning: the model returned non-finite logits (NaN or inf; are its weights "
                "NaN?); their predictions are argmaxes of NaN and mean nothing. The result "
                "records run.nonfinite_logits"
            )
        self._finite = None

    def labels_of(self, logits: Tensor) -> Tensor:
        """``(B,)`` predicted labels of the data: the argmax over all outputs, mapped to
        the dataset's classes with a class map."""
        predicted = logits.argmax(dim=1)
        if self.output_map is not None:
            predicted = self.output_map[predicted]
        return predicted

    def output_of(self, labels: Tensor) -> Tensor:
        """The model output of each label (for a loss): the label itself, or its class-map
        output."""
        if self.output_index is None:
            return labels
        table = torch.tensor(self.output_index, dtype=torch.int64, device=labels.device)
        return table[labels]

    def _check_logits(self, logits: Any, n: int) -> None:
        if not isinstance(logits, Tensor) or logits.ndim != 2 or logits.shape[0] != n:
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise EvalInputError(
                f"the model must return logits of shape (B, num_classes); got {shape}"
            )
        outputs = int(logits.shape[1])
        if self.output_index is not None:
            top = max(self.output_index)
            if top >= outputs:
                folder = self.data.classes[self.output_index.index(top)]
                raise EvalInputError(
                    f"class_map maps folder {folder!r} to output {top} but the model has "
                    f"{outputs} outputs (0..{outputs - 1}); fix the class map"
                )
            other = self.num_classes - 1
            table = torch.full((outputs,), other, dtype=torch.int64)
            table[list(self.output_index)] = torch.arange(len(self.output_index))
            self.output_map = table.to(logits.device)
        elif outputs != self.num_classes:
            hint = (
                "; or pass class_map=FILE to map the class folders to its outputs"
                if isinstance(self.data, FolderDataset)
                else ""
            )
            raise EvalInputError(
                f"the model predicts {outputs} classes but the dataset has "
                f"{self.num_classes}; use a model trained on this dataset{hint}"
            )
        self.checked = True

    def run(self, groups: Sequence[_Group], progress) -> None:
        """Fill the predictions and probabilities of ``groups`` in one pass over their image
        ranges (in order, disjoint): each batch is decoded once and every row of its group
        runs on it. The clean top-1 class of each image (for the probability of the clean
        top-1 class at every point) comes from the group's identity row, run first, or from
        one clean forward pass when the group has none (its clean row was resumed)."""
        queue = iter(groups)
        group = next(queue)
        for batch in self.batches([(g.start, g.stop) for g in groups]):
            while batch.start >= group.stop:
                group.finish()
                group = next(queue)
            x = self.to_device(batch)
            lo, hi = batch.start - group.start, batch.stop - group.start
            if x is None:
                for _, _, out, probs in group.rows:
                    out[lo:hi], probs[lo:hi] = -1, np.nan
            else:
                targets = self.output_of(self.data.labels[batch.start : batch.stop].to(x.device))
                self.pieces(
                    x,
                    lambda a, b, x=x, t=targets, g=group, lo=lo: self._score_rows(
                        g, x[a:b], t[a:b], lo + a
                    ),
                )
                if batch.ok is not None:
                    bad = ~batch.ok.numpy()
                    for _, _, out, probs in group.rows:
                        out[lo:hi][bad], probs[lo:hi][bad] = -1, np.nan
            if progress is not None:
                progress((batch.stop - batch.start) * len(group.rows))
        group.finish()
        for rest in queue:
            rest.finish()

    def _score_rows(self, group: _Group, x: Tensor, targets: Tensor, at: int) -> None:
        """Predictions and probabilities of every row of ``group`` on images ``x`` (stored
        from position ``at`` of the group's arrays)."""
        n = x.shape[0]
        reference = None
        if not any(point.is_identity for _, point, _, _ in group.rows):
            reference = self.logits(x, AffineParams()).argmax(dim=1)
        labels, scores = [], []
        rows = torch.arange(n, device=x.device)
        for _, point, _, _ in group.rows:  # the identity row first (see _Group.add)
            logits = self.logits(x, point)
            p = torch.softmax(logits.float(), dim=1)
            top = logits.argmax(dim=1)
            if reference is None:
                reference = top  # the identity row: the clean top-1 output
            scores.append(torch.stack([p[rows, targets], p[rows, top], p[rows, reference]], 1))
            labels.append(top if self.output_map is None else self.output_map[top])
        # one copy to the host for all rows (on a GPU, one synchronisation per pass)
        labels_np, scores_np = torch.stack(labels).cpu().numpy(), torch.stack(scores).cpu().numpy()
        for (_, _, out, probs), lab, sc in zip(group.rows, labels_np, scores_np, strict=True):
            out[at : at + n] = lab
            probs[at : at + n] = sc


class _Group:
    """The pending shards of one image range: their rows (the identity first), and where
    their predictions and probabilities go."""

    def __init__(self, start: int, stop: int, on_finish: Callable[[_Group], None]):
        self.start, self.stop = start, stop
        self.rows: list[tuple[int, AffineParams, np.ndarray, np.ndarray]] = []
        self.on_finish = on_finish
        self.finished = False

    def add(self, row: int, point: AffineParams) -> None:
        n = self.stop - self.start
        entry = (row, point, np.empty(n, dtype=np.int64), np.empty((n, 3), dtype=np.float32))
        if point.is_identity:
            self.rows.insert(0, entry)
        else:
            self.rows.append(entry)

    def finish(self) -> None:
        if not self.finished:
            self.finished = True
            self.on_finish(self)


def _check_inputs(model: Any, data: Any) -> None:
    if not isinstance(model, nn.Module):
        raise EvalInputError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if model.training:
        raise EvalInputError(
            "the model is in training mode, where BatchNorm and dropout make predictions "
            "depend on the batch; call model.eval() first (evaluate does not change it)"
        )
    if not isinstance(data, ImageDataset | FolderDataset):
        raise EvalInputError(
            "data must be a transforms.datasets.ImageDataset (from load_dataset) or "
            f"FolderDataset (from load_image_folder); got {type(data).__name__}"
        )
    if len(data) == 0:
        raise EvalInputError(f"dataset {data.name!r} ({data.split}) has no images to evaluate")
    channels = model_in_channels(model)
    if channels is not None and channels != data.channels:
        raise EvalInputError(
            f"the model takes {channels} input channel(s) but dataset {data.name!r} has "
            f"{data.channels}; use a model trained on this dataset"
        )


def _as_sweep(sweep: Sweep | str) -> Sweep:
    if isinstance(sweep, Sweep):
        return sweep
    if isinstance(sweep, str):
        try:
            return get_sweep(sweep)
        except ValueError as exc:
            raise EvalInputError(str(exc)) from None
    raise EvalInputError(f"sweep must be a Sweep or a preset name; got {type(sweep).__name__}")


def run_shard(
    model: nn.Module,
    data: ImageDataset,
    sweep: Sweep,
    shard: Shard,
    *,
    options: EvalOptions | None = None,
    device: torch.device | str | None = None,
) -> ShardResult:
    """Predict one shard (row ``shard.row`` of :func:`work_rows` on its image range).

    Args:
        model: A classifier in eval mode, ``(B, C, H, W) -> (B, K)`` logits; not moved.
        data: The split; ``data.images[start:stop]`` are moved batch by batch to the model.
        sweep: The sweep the shard was planned for.
        shard: The unit of work.
        options: Normalisation, interpolation, fill and batch size.
        device: Must be the model's device if given.
    """
    _check_inputs(model, data)
    rows, _ = work_rows(_as_sweep(sweep))
    if not 0 <= shard.row < len(rows) or not 0 <= shard.start <= shard.stop <= len(data):
        raise ValueError(f"shard {shard} is out of range for {len(rows)} rows × {len(data)} images")
    plan = EvalPlan(model, data, sweep, options=options, device=device)
    return plan.run((shard,))[0][0]


def merge_shards(results: Iterable[ShardResult], *, n_rows: int, n_images: int) -> np.ndarray:
    """``(n_rows, n_images)`` predictions from shard results that cover every cell once.

    Raises:
        ValueError: a cell is covered twice or not at all.
    """
    out = np.full((n_rows, n_images), -1, dtype=np.int64)
    covered = np.zeros((n_rows, n_images), dtype=bool)
    for r in results:
        s = r.shard
        if covered[s.row, s.start : s.stop].any():
            raise ValueError(f"shard {s} overlaps another shard")
        out[s.row, s.start : s.stop] = r.predictions
        covered[s.row, s.start : s.stop] = True
    if not covered.all():
        rows = sorted(set(np.nonzero(~covered)[0].tolist()))
        raise ValueError(f"shards do not cover every image of row(s) {rows[:8]}")
    return out


def merge_probs(results: Iterable[ShardResult], *, n_rows: int, n_images: int) -> np.ndarray:
    """``(n_rows, n_images, 3)`` float32 probabilities of shard results that cover every
    cell once (as :func:`merge_shards`)."""
    out = np.full((n_rows, n_images, 3), np.nan, dtype=np.float32)
    for r in results:
        if r.probs is not None:
            out[r.shard.row, r.shard.start : r.shard.stop] = r.probs
    return out


def _pack(pred: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``(n, 4)`` float64 ``[prediction, p_true, p_predicted, p_clean_top1]`` for the
    partial store (predictions are small ints, exact in float64)."""
    return np.concatenate([pred[:, None].astype(np.float64), probs.astype(np.float64)], axis=1)


def _unpack(saved: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return saved[:, 0].astype(np.int64), saved[:, 1:].astype(np.float32)


def weights_digest(model: nn.Module) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a model's state dict."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _default_record(model: nn.Module, options: EvalOptions, num_classes: int) -> ModelRecord:
    from geomrobust.models import count_params, model_spec

    spec = model_spec(model)
    return ModelRecord(
        name=spec[0] if spec else type(model).__name__,
        params=count_params(model),
        num_classes=num_classes,
        mean=options.mean,
        std=options.std,
        normalisation_source="user" if options.mean is not None else "none",
    )


class _Plan:
    """What an evaluation and an attack plan share: checked inputs, the runner, the
    records of model, data, transform and preprocessing, image blocks of all rows, the
    resume key's common part and the ``run`` record. Subclasses set ``rows`` and ``label``
    and call :meth:`_setup`."""

    image_major = True  # a block's rows are computed together (decoded once)
    rows: Sequence[Any]

    def _setup(self, model, data, options, device, record, assumptions) -> None:
        _check_inputs(model, data)
        options = options or EvalOptions()
        if not isinstance(options, EvalOptions):
            raise EvalInputError(f"options must be an EvalOptions; got {type(options).__name__}")
        self.model, self.data, self.options = model, data, options
        self.runner = _Runner(model, data, options, device)
        self.record = record or _default_record(model, options, data.num_classes)
        self.assumptions = tuple(assumptions)
        self.transform = options.transform_record()
        self.preprocess = options.preprocess.to_dict()
        self.data_record = DataRecord(
            data.name,
            data.split,
            len(data),
            data.fingerprint.to_dict(),
            max_images=getattr(data, "max_images", None),
            folder=data.data_record() if isinstance(data, FolderDataset) else None,
        )
        self.labels = data.labels.numpy().astype(np.int64, copy=False)

    @property
    def n_images(self) -> int:
        return len(self.data)

    def shards(self) -> tuple[Shard, ...]:
        """The shards of a run in one process: blocks of :data:`STREAM_BLOCK_BATCHES`
        batches with all rows each (every image decoded once, the clean top-1 class known
        to every row; a finished block is saved for ``resume``)."""
        n = self.n_images
        per = min(n, STREAM_BLOCK_BATCHES * self.options.batch_size)
        return plan_shards(len(self.rows), n, images_per_shard=per, image_major=True)

    def _common_key(self) -> dict[str, Any]:
        return {
            "weights_sha256": weights_digest(self.model),
            "checkpoint_sha256": self.record.checkpoint_sha256,
            "normalisation": [self.options.mean, self.options.std],
            "data": self.data_record.to_dict(),
            "transform": self.transform.to_dict(),
            "preprocess": self.preprocess,
            # a resumed run must not mix predictions of numerics that differ in bits
            "graph": self.options.forward_options().numerics(),
            # nor of deformable kernels that round differently (absent without deformable
            # blocks, so that such runs keep their keys)
            **({"deform_kernel": kernel} if (kernel := self.runner.forward.deform_kernel) else {}),
        }

    def run_record(self, **extra: Any) -> dict[str, Any]:
        """The ``run`` fields every result has (device, dtype, batch size, threads), and
        ``extra``."""
        self.runner._check_finite()
        return {
            "device": str(self.runner.device),
            "dtype": str(self.runner.dtype).removeprefix("torch."),
            "batch_size": self.options.batch_size,
            "threads": torch.get_num_threads(),
            "nonfinite_logits": self.runner.nonfinite_logits,
            **self.runner.forward.record(),
            "pin_memory": self.runner.pin_memory,
            "oom_halvings": self.runner.passes.halvings,
            **extra,
        }


class EvalPlan(_Plan):
    """One evaluation, checked and ready to run shard by shard.

    :func:`evaluate` runs every shard of a plan in one process; each rank of a distributed
    run (:mod:`geomrobust.robustness._distributed`) builds the same plan, runs its own shards, and
    rank 0 turns the merged predictions into the result with :meth:`result`.

    Args:
        model, data, sweep, options, device, record, assumptions: As for :func:`evaluate`.

    Raises:
        EvalInputError: as for :func:`evaluate`.
    """

    def __init__(
        self,
        model: nn.Module,
        data: ImageDataset,
        sweep: Sweep | str,
        *,
        options: EvalOptions | None = None,
        device: torch.device | str | None = None,
        record: ModelRecord | None = None,
        assumptions: Sequence[str] = (),
    ) -> None:
        self.sweep = _as_sweep(sweep)
        self.rows, self.clean_row = work_rows(self.sweep)
        self.label = f"eval {self.sweep.name}"
        self._setup(model, data, options, device, record, assumptions)

    def partial_key(self) -> dict[str, Any]:
        """What a saved partial must match to be resumed: weights, data, sweep, options."""
        return {**self._common_key(), "sweep": self.sweep.to_dict()}

    def check_piece(self, row: int | str, values: np.ndarray) -> str | None:
        """What is wrong with a saved piece (``(n, 4)``: prediction, three probabilities),
        or ``None``: predictions must be class indices (or -1, an unreadable file) and the
        probabilities in [0, 1] (NaN where the logits were not finite)."""
        del row
        if values.ndim != 2 or values.shape[1] != 4 or values.dtype != np.float64:
            return f"shape {values.shape} {values.dtype}, expected (n, 4) float64"
        pred, probs = values[:, 0], values[:, 1:]
        k = self.data.num_classes
        if not (np.isfinite(pred).all() and (pred == np.round(pred)).all()):
            return "predictions that are not class indices"
        if pred.size and (pred.min() < -1 or pred.max() >= k):
            return f"predictions in [{pred.min():g}, {pred.max():g}], outside [0, {k})"
        inside = np.isnan(probs) | ((probs >= 0) & (probs <= 1))
        if not inside.all():
            return "probabilities outside [0, 1]"
        return None

    def run(
        self,
        shards: Iterable[Shard],
        *,
        store: PartialStore | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[list[ShardResult], int]:
        """Predict each shard, or take it from ``store`` where its pieces cover it.

        Every computed shard is saved to ``store`` as soon as it finishes.

        Returns:
            The shard results, in the order given, and how many were computed.
        """
        shards = list(shards)
        found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        groups: dict[tuple[int, int], _Group] = {}
        keys: dict[tuple[int, int, int], int] = {}

        def save(group: _Group) -> None:
            for row, _, pred, probs in group.rows:
                found[keys[(row, group.start, group.stop)]] = (pred, probs)
                if store is not None:
                    store.save_piece(row, group.start, group.stop, _pack(pred, probs))
            log.debug("images [%d, %d): %d row(s) done", group.start, group.stop, len(group.rows))

        for i, shard in enumerate(shards):
            saved = None if store is None else store.lookup(shard.row, shard.start, shard.stop)
            if saved is not None and saved.shape[1:] == (4,):
                found[i] = _unpack(saved)
                if progress is not None:
                    progress(shard.stop - shard.start)
                continue
            keys[(shard.row, shard.start, shard.stop)] = i
            key = (shard.start, shard.stop)  # all pending rows of a range: decode it once
            if key not in groups:
                groups[key] = _Group(shard.start, shard.stop, save)
            groups[key].add(shard.row, self.rows[shard.row])
        computed = sum(len(g.rows) for g in groups.values())
        if groups:
            with torch.inference_mode():
                self.runner.run(list(groups.values()), progress)
        results = [self._shard_result(s, *found[i]) for i, s in enumerate(shards)]
        return results, computed

    def _shard_result(self, shard: Shard, pred: np.ndarray, probs: np.ndarray) -> ShardResult:
        labels, scored = self.labels[shard.start : shard.stop], pred
        valid = pred >= 0  # -1: a file skipped as unreadable
        if not valid.all():
            labels, scored = labels[valid], pred[valid]
        confusion = confusion_matrix(labels, scored, self.data.num_classes)
        return ShardResult(shard, pred, int(np.trace(confusion)), confusion, probs)

    def result(
        self,
        predictions: np.ndarray,
        *,
        run: Mapping[str, Any],
        probs: np.ndarray | None = None,
    ) -> EvalResult:
        """The result from ``(len(rows), N)`` predictions (:func:`merge_shards`) and
        ``(len(rows), N, 3)`` probabilities (:func:`merge_probs`).

        Images skipped as unreadable (predicted ``-1`` on every row) are left out of every
        metric; the data record lists their files."""
        labels, data_record = self.labels, self.data_record
        valid = predictions[self.clean_row] >= 0
        if not valid.all():
            skipped = [self.data.files[i] for i in np.flatnonzero(~valid)]
            log.warning("skipped %d unreadable file(s), e.g. %s", len(skipped), skipped[0])
            labels, predictions = labels[valid], predictions[:, valid]
            probs = None if probs is None else probs[:, valid]
            data_record = replace(data_record, n=int(valid.sum()), unreadable=tuple(skipped))
        pred = Predictions(
            labels=labels,
            clean=predictions[self.clean_row].copy(),
            points=predictions[: len(self.sweep)],
            clean_probs=None if probs is None else probs[self.clean_row].copy(),
            probs=None if probs is None else probs[: len(self.sweep)],
        )
        clean, points, summary = summarise(self.sweep, pred, num_classes=self.data.num_classes)
        return EvalResult(
            model=self.record,
            data=data_record,
            sweep=self.sweep,
            transform=self.transform,
            preprocess=self.preprocess,
            clean=clean,
            points=points,
            summary=summary,
            versions=versions(),
            assumptions=self.assumptions,
            run=dict(run),
            predictions=pred,
        )


def evaluate(
    model: nn.Module,
    data: ImageDataset,
    sweep: Sweep | str,
    *,
    options: EvalOptions | None = None,
    device: torch.device | str | None = None,
    record: ModelRecord | None = None,
    assumptions: Sequence[str] = (),
    partial: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
) -> EvalResult:
    """Evaluate a classifier on every point of a sweep.

    Each image is warped in [0, 1] image space (``geomrobust.transforms.warp``, one transform per
    batch), then normalised as ``(x - mean) / std``, then classified; the prediction is the
    argmax of the logits, so metrics do not depend on the batch size.

    Args:
        model: A classifier ``(B, C, H, W) -> (B, K)`` logits, in eval mode. It is neither
            moved nor switched to eval mode; images go to its device and dtype.
        data: The split (``geomrobust.transforms.datasets.load_dataset``); ``(N, C, H, W)`` images
        in
            [0, 1].
        sweep: A :class:`geomrobust.transforms.Sweep` or a preset name (``"scale"``, ...).
        options: Normalisation, interpolation, fill and batch size (:class:`EvalOptions`).
        device: If given, must be the model's device (a check, not a move).
        record: What to record about the model (the CLI fills checkpoint and hash);
            default: its registry name or class name and parameter count.
        assumptions: Notes recorded in the result (what was assumed, not read).
        partial: Folder where finished rows are saved as they finish (resumable);
            ``None`` keeps everything in memory.
        resume: Reuse the rows already in ``partial`` if it belongs to the same model
            weights, data, sweep and options (else :class:`ResumeError`); rows finished by
            the ranks of a distributed run are reused too.
        progress: Called with the number of images after every batch.

    The ``partial`` folder is left in place; remove it once the result is saved (the CLI
    does, after writing the result).

    Returns:
        An :class:`EvalResult` with per-point metrics, the summary and the predictions.

    Raises:
        EvalInputError: training-mode model, channels or classes that disagree with the
            data, bad options, a device other than the model's, or a foreign partial.
    """
    plan = EvalPlan(
        model,
        data,
        sweep,
        options=options,
        device=device,
        record=record,
        assumptions=assumptions,
    )
    n = plan.n_images
    store = None
    if partial is not None:
        store = PartialStore(partial, plan.partial_key(), n, check=plan.check_piece)
        store.start(resume=resume)
    started = time.perf_counter()
    shards = plan.shards()
    results, computed = plan.run(shards, store=store, progress=progress)
    elapsed = time.perf_counter() - started
    predictions = merge_shards(results, n_rows=len(plan.rows), n_images=n)
    probs = merge_probs(results, n_rows=len(plan.rows), n_images=n)
    run = plan.run_record(
        shards=len(shards),
        shards_computed=computed,
        shards_resumed=len(shards) - computed,
        elapsed_s=round(elapsed, 3),
    )
    return plan.result(predictions, run=run, probs=probs)
