"""Result records of an evaluation: per-point metrics, the summary, and the whole result.

All are frozen dataclasses with ``to_dict()`` / ``from_dict()``; the JSON layout carries the
schema tag ``"geomrobust.eval/1"``. Every number is computed from integer predictions by
:func:`point_result` and :func:`summarise`, so a result rebuilt from its predictions file is
identical to the one written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geomrobust.robustness._metrics import confusion_matrix, per_class_accuracy, wilson_interval
from geomrobust.robustness._stability import flip_probability, mean_abs_prob_change
from geomrobust.transforms import AffineParams, Sweep

__all__ = [
    "EVAL_SCHEMA",
    "DataRecord",
    "EvalResult",
    "ModelRecord",
    "PointResult",
    "Predictions",
    "Summary",
    "TransformRecord",
    "point_result",
    "summarise",
]

EVAL_SCHEMA = "geomrobust.eval/1"


@dataclass(frozen=True)
class PointResult:
    """Metrics of one sweep point over the whole split.

    Attributes:
        scale, angle_deg, shift_px: The point (see :class:`geomrobust.transforms.AffineParams`).
        n: Images evaluated.
        correct: Images classified correctly.
        accuracy: ``correct / n``.
        ci95: 95 % Wilson interval of the accuracy.
        confusion: ``(K, K)`` counts ``[true][predicted]``.
        per_class_accuracy: Recall of each class (``None`` for a class with no images).
        flip_rate: Fraction of images whose prediction differs from the untransformed one
            (Azulay & Weiss's P(top-1 change) against clean).
        mean_abs_prob_change: Mean over images of the absolute change, against the clean
            image, of the softmax probability of the clean top-1 class (Azulay & Weiss's
            MAC); ``None`` where probabilities were not recorded or are not finite (a model
            with non-finite logits).
    """

    scale: float
    angle_deg: float
    shift_px: tuple[float, float]
    n: int
    correct: int
    accuracy: float
    ci95: tuple[float, float]
    confusion: tuple[tuple[int, ...], ...]
    per_class_accuracy: tuple[float | None, ...]
    flip_rate: float
    mean_abs_prob_change: float | None = None

    @property
    def point(self) -> AffineParams:
        """The transform point."""
        return AffineParams(self.scale, self.angle_deg, self.shift_px)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "angle_deg": self.angle_deg,
            "shift_px": list(self.shift_px),
            "n": self.n,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "ci95": list(self.ci95),
            "confusion": [list(row) for row in self.confusion],
            "per_class_accuracy": list(self.per_class_accuracy),
            "flip_rate": self.flip_rate,
            "mean_abs_prob_change": self.mean_abs_prob_change,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PointResult:
        mac = data.get("mean_abs_prob_change")
        return cls(
            scale=float(data["scale"]),
            angle_deg=float(data["angle_deg"]),
            shift_px=(float(data["shift_px"][0]), float(data["shift_px"][1])),
            n=int(data["n"]),
            correct=int(data["correct"]),
            accuracy=float(data["accuracy"]),
            ci95=(float(data["ci95"][0]), float(data["ci95"][1])),
            confusion=tuple(tuple(int(v) for v in row) for row in data["confusion"]),
            per_class_accuracy=tuple(data["per_class_accuracy"]),
            flip_rate=float(data["flip_rate"]),
            mean_abs_prob_change=None if mac is None else float(mac),
        )


@dataclass(frozen=True)
class Summary:
    """Sweep-level figures.

    Attributes:
        clean_accuracy: Accuracy on the untransformed images (always evaluated).
        mean_accuracy: Mean of the points' accuracies, each point weighted equally (the
            figure the published scaled-MNIST comparison reports).
        worst_accuracy: Lowest accuracy over the points.
        worst_point: The point with that accuracy (the first one on ties).
        all_points_accuracy: Fraction of images correct under every point (the grid worst
            case of the spatial-robustness literature).
        consistency: Fraction of images with the same prediction under every point.
        relative_robustness: ``mean_accuracy / clean_accuracy``; ``None`` if clean is 0.
        flip_probability: For a sweep that is one ordered sequence
            (:attr:`geomrobust.transforms.Sweep.is_sequence`), the share of consecutive
            points at which an image's top-1 prediction changes, averaged over images
            (Hendrycks & Dietterich); ``None`` for a grid, a cross or one point.
        flip_share_by_pair: Each consecutive pair's share of changed predictions
            (``len(points) - 1`` values), or ``None``.
    """

    clean_accuracy: float
    mean_accuracy: float
    worst_accuracy: float
    worst_point: AffineParams
    all_points_accuracy: float
    consistency: float
    relative_robustness: float | None
    flip_probability: float | None = None
    flip_share_by_pair: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean_accuracy": self.clean_accuracy,
            "mean_accuracy": self.mean_accuracy,
            "worst_accuracy": self.worst_accuracy,
            "worst_point": self.worst_point.to_dict(),
            "all_points_accuracy": self.all_points_accuracy,
            "consistency": self.consistency,
            "relative_robustness": self.relative_robustness,
            "flip_probability": self.flip_probability,
            "flip_share_by_pair": None
            if self.flip_share_by_pair is None
            else list(self.flip_share_by_pair),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        rel = data["relative_robustness"]
        fp, shares = data.get("flip_probability"), data.get("flip_share_by_pair")
        return cls(
            clean_accuracy=float(data["clean_accuracy"]),
            mean_accuracy=float(data["mean_accuracy"]),
            worst_accuracy=float(data["worst_accuracy"]),
            worst_point=AffineParams.from_dict(data["worst_point"]),
            all_points_accuracy=float(data["all_points_accuracy"]),
            consistency=float(data["consistency"]),
            relative_robustness=None if rel is None else float(rel),
            flip_probability=None if fp is None else float(fp),
            flip_share_by_pair=None if shares is None else tuple(float(v) for v in shares),
        )


@dataclass(frozen=True)
class ModelRecord:
    """Which model was evaluated and how its inputs were prepared.

    Attributes:
        name: Registry name, ``package.module:factory`` or the module's class name.
        params: Parameter count.
        checkpoint: The checkpoint as given (a path or ``ref:NAME``), or ``None``.
        checkpoint_sha256: sha256 of the checkpoint file's bytes, or ``None``.
        num_classes: Classes the model predicts.
        class_names: Names of the classes, if known.
        mean, std: Per-channel normalisation applied after warping (``None``: images are
            given to the model in [0, 1]).
        normalisation_source: ``"checkpoint"``, ``"user"`` or ``"none"``.
        model_args: Build arguments the caller gave (``model_args``; on the command line
            ``--model-args``), on top of the checkpoint's; JSON-ready, empty when none.
        checkpoint_unwrapped: What was removed from a plain state dict to load it, in order:
            a training state's wrapper key (``"state_dict key 'state_dict'"``) and key
            prefixes (``"prefix 'module.'"``, ``"prefix '_orig_mod.'"``).
        training_seed: The seed the checkpoint records it was trained with (``geomrobust
            train``), or ``None``.
        training_recipe: sha256 of the checkpoint's training settings without the seed and
            what follows from it (split, best epoch, times, validation figures), or
            ``None``: results whose checkpoints share the name and the recipe but not the
            seed are seeds of one model (:func:`geomrobust.robustness.seed_groups`).
    """

    name: str
    params: int
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    normalisation_source: str = "none"
    model_args: Mapping[str, Any] = field(default_factory=dict)
    checkpoint_unwrapped: tuple[str, ...] = ()
    training_seed: int | None = None
    training_recipe: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.params,
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256,
            "num_classes": self.num_classes,
            "class_names": None if self.class_names is None else list(self.class_names),
            "mean": None if self.mean is None else list(self.mean),
            "std": None if self.std is None else list(self.std),
            "normalisation_source": self.normalisation_source,
            "model_args": dict(self.model_args),
            "checkpoint_unwrapped": list(self.checkpoint_unwrapped),
            "training_seed": self.training_seed,
            "training_recipe": self.training_recipe,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelRecord:
        def tup(value):
            return None if value is None else tuple(value)

        return cls(
            name=data["name"],
            params=int(data["params"]),
            checkpoint=data.get("checkpoint"),
            checkpoint_sha256=data.get("checkpoint_sha256"),
            num_classes=data.get("num_classes"),
            class_names=tup(data.get("class_names")),
            mean=tup(data.get("mean")),
            std=tup(data.get("std")),
            normalisation_source=data.get("normalisation_source", "none"),
            model_args=dict(data.get("model_args") or {}),
            checkpoint_unwrapped=tuple(data.get("checkpoint_unwrapped") or ()),
            training_seed=data.get("training_seed"),
            training_recipe=data.get("training_recipe"),
        )


@dataclass(frozen=True)
class DataRecord:
    """The data evaluated: dataset, split, image count and fingerprint (as a dict).

    Attributes:
        dataset, split: The dataset's name (``"imagefolder"`` for a folder) and split (a
            folder's name).
        n: Images evaluated (skipped unreadable files not counted).
        fingerprint: The data's fingerprint, as a dict.
        max_images: The ``max_images`` cut (the first N images), or ``None``.
        folder: For an image folder: its path, how classes were assigned
            (``class_source``, ``output_index``), channels and ``skip_unreadable``.
        unreadable: Files skipped because they did not decode, relative to the folder.
    """

    dataset: str
    split: str
    n: int
    fingerprint: Mapping[str, Any]
    max_images: int | None = None
    folder: Mapping[str, Any] | None = None
    unreadable: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "n": self.n,
            "fingerprint": dict(self.fingerprint),
            "max_images": self.max_images,
            "folder": None if self.folder is None else dict(self.folder),
            "unreadable": list(self.unreadable),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataRecord:
        folder = data.get("folder")
        return cls(
            data["dataset"],
            data["split"],
            int(data["n"]),
            dict(data["fingerprint"]),
            max_images=data.get("max_images"),
            folder=None if folder is None else dict(folder),
            unreadable=tuple(data.get("unreadable") or ()),
        )


@dataclass(frozen=True)
class TransformRecord:
    """How the images were warped (see ``docs/CONVENTION.md``).

    Attributes:
        interpolation: ``"bilinear"`` or ``"nearest"``.
        padding: ``"zeros"`` or ``"constant"``.
        fill: The constant fill in image space ([0, 1] pixels), one per channel, or ``None``.
        fill_spec: What was asked for: ``"mean"`` (the model's normalisation mean), a number
            list as given, or ``None`` for zeros.
        convention: One line naming the convention.
    """

    interpolation: str
    padding: str
    fill: tuple[float, ...] | None = None
    fill_spec: str | None = None
    convention: str = (
        "p' = c + scale * R(angle_deg) * (p - c) + shift_px; pixel coordinates, centre "
        "((W-1)/2, (H-1)/2), align_corners=False, positive angles counter-clockwise; "
        "warp in [0, 1] image space, then normalise"
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "interpolation": self.interpolation,
            "padding": self.padding,
            "fill": None if self.fill is None else list(self.fill),
            "fill_spec": self.fill_spec,
            "convention": self.convention,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransformRecord:
        fill = data.get("fill")
        return cls(
            interpolation=data["interpolation"],
            padding=data["padding"],
            fill=None if fill is None else tuple(float(v) for v in fill),
            fill_spec=data.get("fill_spec"),
            convention=data.get("convention", cls.convention),
        )


PROB_FIELDS = ("true", "predicted", "clean_top1")
"""The probabilities recorded per image and point (last axis of ``Predictions.probs``)."""


@dataclass(frozen=True, eq=False)
class Predictions:
    """Per-image predictions: what comparisons and reports use instead of rerunning.

    Attributes:
        labels: ``(N,)`` int64 true classes.
        clean: ``(N,)`` int64 predictions on the untransformed images.
        points: ``(P, N)`` int64 predictions, one row per sweep point.
        clean_probs, probs: ``(N, 3)`` and ``(P, N, 3)`` float32 softmax probabilities of
            each image, clean and at each point: of the true class, of the predicted class
            and of the clean top-1 class (:data:`PROB_FIELDS`); ``None`` if not recorded.
    """

    labels: np.ndarray
    clean: np.ndarray
    points: np.ndarray
    clean_probs: np.ndarray | None = None
    probs: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.labels.shape[0]
        if self.labels.shape != (n,) or self.clean.shape != (n,) or self.points.ndim != 2:
            raise ValueError(
                f"predictions must be labels (N,), clean (N,), points (P, N); got "
                f"{self.labels.shape}, {self.clean.shape}, {self.points.shape}"
            )
        if self.points.shape[1] != n:
            raise ValueError(f"points must have shape (P, {n}); got {self.points.shape}")
        if (self.probs is None) != (self.clean_probs is None):
            raise ValueError("give both clean_probs and probs, or neither")
        if self.probs is not None and (
            self.probs.shape != (*self.points.shape, 3) or self.clean_probs.shape != (n, 3)
        ):
            raise ValueError(
                f"probs must be (P, N, 3) = {(*self.points.shape, 3)} and clean_probs (N, 3); "
                f"got {self.probs.shape} and {self.clean_probs.shape}"
            )

    def correct(self) -> np.ndarray:
        """``(P, N)`` bool: whether each image is classified correctly under each point."""
        return self.points == self.labels[None, :]


@dataclass(frozen=True)
class EvalResult:
    """Everything an evaluation produced. ``to_dict()`` is the JSON file's content.

    Attributes:
        model, data, sweep, transform: What was evaluated and how.
        clean: Metrics of the untransformed images (the identity point).
        points: Metrics of each sweep point, in the sweep's order.
        summary: Sweep-level figures.
        versions: ``geomrobust``, ``torch`` and ``python`` versions.
        assumptions: What was assumed rather than read from the checkpoint.
        run: Device, batch size and elapsed time (not part of the metrics).
        predictions: The per-image predictions (saved beside the JSON, not in it).
        preprocess: The order of the steps from file to model and the resize and crop
            (``geomrobust.transforms.datasets.Preprocess.to_dict``); empty in results
            written before it was recorded.
        schema: ``"geomrobust.eval/1"``.
    """

    model: ModelRecord
    data: DataRecord
    sweep: Sweep
    transform: TransformRecord
    clean: PointResult
    points: tuple[PointResult, ...]
    summary: Summary
    preprocess: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    assumptions: tuple[str, ...] = ()
    run: Mapping[str, Any] = field(default_factory=dict, compare=False)
    predictions: Predictions | None = field(default=None, compare=False, repr=False)
    schema: str = EVAL_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "model": self.model.to_dict(),
            "data": self.data.to_dict(),
            "sweep": self.sweep.to_dict(),
            "transform": self.transform.to_dict(),
            "preprocess": dict(self.preprocess),
            "versions": dict(self.versions),
            "assumptions": list(self.assumptions),
            "run": dict(self.run),
            "clean": self.clean.to_dict(),
            "points": [p.to_dict() for p in self.points],
            "summary": self.summary.to_dict(),
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, predictions: Predictions | None = None
    ) -> EvalResult:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: the schema tag is not ``"geomrobust.eval/1"``.
            KeyError: a required field is missing.
        """
        schema = data.get("schema")
        if schema != EVAL_SCHEMA:
            raise ValueError(
                f"not an evaluation result: schema is {schema!r}; expected {EVAL_SCHEMA!r}"
            )
        return cls(
            model=ModelRecord.from_dict(data["model"]),
            data=DataRecord.from_dict(data["data"]),
            sweep=Sweep.from_dict(data["sweep"]),
            transform=TransformRecord.from_dict(data["transform"]),
            clean=PointResult.from_dict(data["clean"]),
            points=tuple(PointResult.from_dict(p) for p in data["points"]),
            summary=Summary.from_dict(data["summary"]),
            preprocess=dict(data.get("preprocess") or {}),
            versions=dict(data.get("versions", {})),
            assumptions=tuple(data.get("assumptions", ())),
            run=dict(data.get("run", {})),
            predictions=predictions,
        )


def point_result(
    point: AffineParams,
    labels: np.ndarray,
    predictions: np.ndarray,
    clean: np.ndarray,
    *,
    num_classes: int,
    clean_top1_prob: np.ndarray | None = None,
    point_top1_prob: np.ndarray | None = None,
) -> PointResult:
    """Metrics of one point from ``(N,)`` labels, predictions and clean predictions, and
    (for the MAC) the probability of each image's clean top-1 class, clean and at the
    point."""
    n = int(labels.shape[0])
    confusion = confusion_matrix(labels, predictions, num_classes)
    correct = int(np.trace(confusion))
    return PointResult(
        scale=point.scale,
        angle_deg=point.angle_deg,
        shift_px=point.shift_px,
        n=n,
        correct=correct,
        accuracy=correct / n if n else 0.0,
        ci95=wilson_interval(correct, n),
        confusion=tuple(tuple(int(v) for v in row) for row in confusion),
        per_class_accuracy=tuple(per_class_accuracy(confusion)),
        flip_rate=float(np.mean(predictions != clean)) if n else 0.0,
        mean_abs_prob_change=_finite_or_none(
            None
            if clean_top1_prob is None or point_top1_prob is None
            else mean_abs_prob_change(clean_top1_prob, point_top1_prob)
        ),
    )


def _finite_or_none(value: float | None) -> float | None:
    """``None`` for a non-finite figure (from non-finite logits): JSON has no NaN."""
    return value if value is None or math.isfinite(value) else None


def summarise(
    sweep: Sweep | Sequence[AffineParams], predictions: Predictions, *, num_classes: int
) -> tuple[PointResult, tuple[PointResult, ...], Summary]:
    """``(clean, points, summary)`` from per-image predictions.

    Args:
        sweep: The ``P`` points, in the order of ``predictions.points``.
        predictions: Labels ``(N,)``, clean ``(N,)`` and point ``(P, N)`` predictions.
        num_classes: ``K``, the size of the confusion matrices.
    """
    pts = tuple(sweep)
    if len(pts) != predictions.points.shape[0]:
        raise ValueError(
            f"sweep has {len(pts)} points but predictions have {predictions.points.shape[0]} rows"
        )
    labels, clean_pred = predictions.labels, predictions.clean
    top1 = {}
    if predictions.probs is not None:  # the clean top-1 class's probability, clean
        top1["clean_top1_prob"] = predictions.clean_probs[:, PROB_FIELDS.index("clean_top1")]
    clean = point_result(
        AffineParams(),
        labels,
        clean_pred,
        clean_pred,
        num_classes=num_classes,
        **({} if not top1 else top1 | {"point_top1_prob": top1["clean_top1_prob"]}),
    )
    points = tuple(
        point_result(
            p,
            labels,
            row,
            clean_pred,
            num_classes=num_classes,
            **(
                {}
                if not top1
                else top1
                | {"point_top1_prob": predictions.probs[i, :, PROB_FIELDS.index("clean_top1")]}
            ),
        )
        for i, (p, row) in enumerate(zip(pts, predictions.points, strict=True))
    )
    accuracies = [p.accuracy for p in points]
    worst = int(np.argmin(accuracies))
    mean_acc = float(np.mean(accuracies))
    n = labels.shape[0]
    if n:
        all_points = float(predictions.correct().all(axis=0).mean())
        consistent = float((predictions.points == predictions.points[:1]).all(axis=0).mean())
    else:
        all_points = consistent = 0.0
    sequence = sweep.is_sequence if isinstance(sweep, Sweep) else Sweep("-", pts, ()).is_sequence
    fp, shares = flip_probability(predictions.points) if sequence and n else (None, None)
    summary = Summary(
        flip_probability=fp,
        flip_share_by_pair=shares,
        clean_accuracy=clean.accuracy,
        mean_accuracy=mean_acc,
        worst_accuracy=accuracies[worst],
        worst_point=pts[worst],
        all_points_accuracy=all_points,
        consistency=consistent,
        relative_robustness=mean_acc / clean.accuracy if clean.accuracy > 0 else None,
    )
    return clean, points, summary
