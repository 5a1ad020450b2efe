"""Evaluation of transformation-pair classifiers (``pair-net``) on freshly drawn pairs.

Pairs come from :class:`geomrobust.transforms.datasets.TransformPairs`: pair ``k`` is a pure
function of ``(seed, k)``, so the same ``--pairs N --seed S`` gives the same pairs on any machine
and at any batch size.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from geomrobust.robustness._eval_errors import EvalInputError
from geomrobust.robustness._forward import ForwardOptions, ModelForward, Passes
from geomrobust.robustness._metrics import confusion_matrix, per_class_accuracy, wilson_interval
from geomrobust.robustness._results import DataRecord, ModelRecord
from geomrobust.robustness._runtime import model_device_dtype, versions
from geomrobust.transforms.datasets import ImageDataset, PairClass, PairConfig, TransformPairs

__all__ = ["PAIRS_SCHEMA", "PairResult", "evaluate_pairs"]

PAIRS_SCHEMA = "geomrobust.pairs/1"


@dataclass(frozen=True)
class PairResult:
    """Metrics of a pair classifier.

    Attributes:
        model, data: What was evaluated (``data`` is the pairs' source split).
        num_pairs, seed: Which pairs.
        pair_config: The :class:`PairConfig` fields, JSON-ready.
        class_names: The pair classes (``PairClass`` names), indexed by label.
        n, correct, accuracy, ci95: Overall counts, accuracy and its 95 % Wilson interval.
        per_class_recall: Recall of each pair class (``None`` for a class with no pairs).
        per_class_ci95: Wilson interval of each recall.
        confusion: ``(K, K)`` counts ``[true][predicted]``.
        versions, run: Versions; device, batch size, elapsed time.
        predictions: ``(N,)`` predicted classes (not in the JSON).
    """

    model: ModelRecord
    data: DataRecord
    num_pairs: int
    seed: int
    pair_config: Mapping[str, Any]
    class_names: tuple[str, ...]
    n: int
    correct: int
    accuracy: float
    ci95: tuple[float, float]
    per_class_recall: tuple[float | None, ...]
    per_class_ci95: tuple[tuple[float, float], ...]
    confusion: tuple[tuple[int, ...], ...]
    versions: Mapping[str, str] = field(default_factory=dict)
    run: Mapping[str, Any] = field(default_factory=dict, compare=False)
    predictions: np.ndarray | None = field(default=None, compare=False, repr=False)
    schema: str = PAIRS_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "model": self.model.to_dict(),
            "data": self.data.to_dict(),
            "num_pairs": self.num_pairs,
            "seed": self.seed,
            "pair_config": dict(self.pair_config),
            "class_names": list(self.class_names),
            "versions": dict(self.versions),
            "run": dict(self.run),
            "n": self.n,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "ci95": list(self.ci95),
            "per_class_recall": list(self.per_class_recall),
            "per_class_ci95": [list(ci) for ci in self.per_class_ci95],
            "confusion": [list(row) for row in self.confusion],
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, predictions: np.ndarray | None = None
    ) -> PairResult:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: the schema tag is not ``"geomrobust.pairs/1"``.
            KeyError: a required field is missing.
        """
        schema = data.get("schema")
        if schema != PAIRS_SCHEMA:
            raise ValueError(
                f"not a pair-classifier result: schema is {schema!r}; expected {PAIRS_SCHEMA!r}"
            )
        return cls(
            model=ModelRecord.from_dict(data["model"]),
            data=DataRecord.from_dict(data["data"]),
            num_pairs=int(data["num_pairs"]),
            seed=int(data["seed"]),
            pair_config=dict(data["pair_config"]),
            class_names=tuple(data["class_names"]),
            n=int(data["n"]),
            correct=int(data["correct"]),
            accuracy=float(data["accuracy"]),
            ci95=(float(data["ci95"][0]), float(data["ci95"][1])),
            per_class_recall=tuple(
                None if v is None else float(v) for v in data["per_class_recall"]
            ),
            per_class_ci95=tuple((float(lo), float(hi)) for lo, hi in data["per_class_ci95"]),
            confusion=tuple(tuple(int(v) for v in row) for row in data["confusion"]),
            versions=dict(data.get("versions", {})),
            run=dict(data.get("run", {})),
            predictions=predictions,
        )


def _config_dict(config: PairConfig) -> dict[str, Any]:
    return {
        "num_classes": config.num_classes,
        "angle_deg": [list(i) for i in config.angle_deg],
        "scale": [list(i) for i in config.scale],
        "shift_fraction": list(config.shift_fraction),
        "crop": config.crop,
        "interpolation": config.interpolation.value,
        "padding": config.padding.value,
    }


def evaluate_pairs(
    model: nn.Module,
    data: ImageDataset,
    *,
    num_pairs: int,
    seed: int = 0,
    config: PairConfig | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    batch_size: int = 256,
    record: ModelRecord | None = None,
    progress: Callable[[int], None] | None = None,
    pair_range: tuple[int, int] | None = None,
    predictions: np.ndarray | None = None,
    forward: ForwardOptions | None = None,
) -> PairResult:
    """Classify ``num_pairs`` fresh pairs drawn from ``data`` with ``model(a, b)``.

    A distributed run (:mod:`geomrobust.robustness._distributed`) splits the pairs: each rank
    classifies its ``pair_range``, and rank 0 passes the gathered ``predictions`` to get
    the metrics of all pairs, equal to those of one process.

    Args:
        model: A pair classifier ``(a, b) -> (B, K)`` logits in eval mode (not moved).
        data: The source split of the pairs.
        num_pairs: How many pairs, >= 1.
        seed: Seed of the pairs.
        config: Pair magnitudes and options; default ``PairConfig(num_classes=K)`` with
            ``K`` the model's ``num_classes``.
        mean, std: Normalisation applied to both images after warping.
        batch_size: Pairs per forward pass.
        record: What to record about the model.
        progress: Called with the number of pairs after each batch.
        pair_range: ``(start, stop)``: classify only pairs ``[start, stop)``, a non-empty
            part of ``[0, num_pairs)``; the counts, metrics and ``predictions`` of the
            result then cover those pairs only.
        predictions: ``(num_pairs,)`` predictions made elsewhere (gathered from ranks):
            nothing is classified, only the metrics are computed.
        forward: How the model is called (graph, mixed precision, ...); default
            :class:`ForwardOptions` (eager, exact). A forward pass that runs out of memory
            is retried in halves.

    Raises:
        EvalInputError: training-mode model, bad counts or range, or a class count other
            than the pair config's.
    """
    from geomrobust.models import count_params

    if not isinstance(model, nn.Module):
        raise EvalInputError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if model.training:
        raise EvalInputError("the model is in training mode; call model.eval() first")
    if isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs < 1:
        raise EvalInputError(f"num_pairs must be an int >= 1; got {num_pairs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise EvalInputError(f"batch_size must be an int >= 1; got {batch_size!r}")
    k = getattr(model, "num_classes", None)
    if config is None:
        if k not in (7, 8):
            raise EvalInputError(
                f"the model predicts {k} classes; pair classifiers predict 7 or 8 pair classes "
                "(is this a pair-net checkpoint?)"
            )
        config = PairConfig(num_classes=k)
    if isinstance(k, int) and k != config.num_classes:
        raise EvalInputError(
            f"the model predicts {k} classes but the pairs have {config.num_classes}"
        )
    device, dtype = model_device_dtype(model, None)
    c = data.image_shape[0]
    m = s = None
    if mean is not None and std is not None:
        m = torch.tensor(mean, dtype=dtype, device=device).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=dtype, device=device).view(1, -1, 1, 1)
        if m.shape[1] not in (1, c) or s.shape[1] not in (1, c):
            raise EvalInputError(f"mean/std need 1 or {c} values; got {list(mean)}, {list(std)}")
    first, last = (0, num_pairs) if pair_range is None else tuple(pair_range)
    if not (isinstance(first, int) and isinstance(last, int) and 0 <= first < last <= num_pairs):
        raise EvalInputError(
            f"pair_range must be (start, stop) with 0 <= start < stop <= num_pairs "
            f"({num_pairs}); got {pair_range!r}"
        )
    pairs = TransformPairs(data, num_pairs, config=config, generator=seed)
    forward = ForwardOptions() if forward is None else forward
    if not isinstance(forward, ForwardOptions):
        raise EvalInputError(f"forward must be a ForwardOptions; got {type(forward).__name__}")
    run_model, passes = ModelForward(model, device, forward), Passes()
    started = time.perf_counter()
    if predictions is not None:
        predictions = np.asarray(predictions)
        if predictions.shape != (num_pairs,) or predictions.dtype.kind not in "iu":
            raise EvalInputError(
                f"predictions must be ({num_pairs},) integers, one per pair; got "
                f"{predictions.shape} {predictions.dtype}"
            )
        predictions = predictions[first:last].astype(np.int64)
    else:
        predictions = np.empty(last - first, dtype=np.int64)

        def classify(a_img: Tensor, b_img: Tensor, at: int) -> Callable[[int, int], None]:
            def piece(lo: int, hi: int) -> None:
                logits = run_model(a_img[lo:hi], b_img[lo:hi])
                predictions[at + lo : at + hi] = logits.argmax(dim=1).cpu().numpy()

            return piece

        with torch.inference_mode():
            for start in range(first, last, batch_size):
                stop = min(start + batch_size, last)
                a, b, _, _ = pairs.batch(np.arange(start, stop))
                a, b = a.to(device, dtype), b.to(device, dtype)
                if m is not None:
                    a, b = (a - m) / s, (b - m) / s
                passes.run(0, stop - start, classify(a, b, start - first))
                if progress is not None:
                    progress(stop - start)
    labels = pairs.labels(np.arange(first, last)).numpy().astype(np.int64)
    kk = config.num_classes
    if predictions.size and (predictions.max() >= kk or predictions.min() < 0):
        raise EvalInputError(f"the model predicts classes beyond the {kk} pair classes")
    n = last - first
    confusion = confusion_matrix(labels, predictions, kk)
    correct = int(np.trace(confusion))
    totals = confusion.sum(axis=1)
    record = record or ModelRecord(name=type(model).__name__, params=count_params(model))
    return PairResult(
        model=record,
        data=DataRecord(data.name, data.split, len(data), data.fingerprint.to_dict()),
        num_pairs=num_pairs,
        seed=seed,
        pair_config=_config_dict(config),
        class_names=tuple(PairClass(i).name.lower() for i in range(kk)),
        n=n,
        correct=correct,
        accuracy=correct / n,
        ci95=wilson_interval(correct, n),
        per_class_recall=tuple(per_class_accuracy(confusion)),
        per_class_ci95=tuple(
            wilson_interval(int(confusion[i, i]), int(totals[i])) for i in range(kk)
        ),
        confusion=tuple(tuple(int(v) for v in row) for row in confusion),
        versions=versions(),
        run={
            "device": str(device),
            "batch_size": batch_size,
            "elapsed_s": round(time.perf_counter() - started, 3),
            **run_model.record(),
            "oom_halvings": passes.halvings,
        },
        predictions=predictions,
    )
