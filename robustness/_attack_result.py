"""Results of the spatial attack: the summary with intervals, per-image outcomes, files.

``RESULT.json`` (schema ``geomrobust.attack/1``) holds the model, data, attack settings,
transform and preprocessing records and the summary; ``RESULT.predictions.npz`` beside it
holds, per image, each mode's prediction and the worst parameters: the random and
worst-of-k draws and the first failing grid point (NaN where none failed).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from geomrobust._json import loads
from geomrobust.robustness._attack_config import (
    FIRST_WORST_DRAW,
    RANDOM_DRAW,
    AttackConfig,
)
from geomrobust.robustness._eval_errors import EvalInputError
from geomrobust.robustness._io import predictions_path, write_with_predictions
from geomrobust.robustness._metrics import wilson_interval
from geomrobust.robustness._results import DataRecord, ModelRecord, TransformRecord
from geomrobust.robustness._stability import pair_consistency

__all__ = [
    "ATTACK_SCHEMA",
    "MODES",
    "OUTCOMES",
    "AttackResult",
    "load_attack_result",
    "write_attack_result",
]

log = logging.getLogger("geomrobust.eval")

ATTACK_SCHEMA = "geomrobust.attack/1"
OUTCOMES = ("pred_clean", "pred_random", "pred_pair", "pred_worst", "worst_draw", "grid_first_fail")
"""The per-image outcome rows an attack computes (``-1`` in ``pred_clean``: a skipped file;
in ``grid_first_fail``: no grid point failed)."""
MODES = ("clean", "random", "worst_of_k", "grid")


@dataclass(frozen=True, eq=False)
class AttackResult:
    """Everything an attack produced; ``to_dict()`` is the JSON file's content.

    Attributes:
        model, data, transform, preprocess: What was attacked and how images were prepared.
        attack: The settings (:meth:`AttackConfig.to_dict`) and the box in pixels.
        summary: ``n``; ``clean_accuracy``, ``random_accuracy``, ``worst_of_k_accuracy``,
            ``grid_accuracy`` with their ``*_ci95`` (Wilson) and ``*_correct`` counts;
            ``pair_consistency``; ``k``; ``grid``; ``box``.
        correct: ``{mode: (N,) bool}`` per-image outcomes (saved beside the JSON).
        arrays: Everything saved in the predictions file.
    """

    model: ModelRecord
    data: DataRecord
    attack: Mapping[str, Any]
    transform: TransformRecord
    preprocess: Mapping[str, Any]
    summary: Mapping[str, Any]
    versions: Mapping[str, str] = field(default_factory=dict)
    assumptions: tuple[str, ...] = ()
    run: Mapping[str, Any] = field(default_factory=dict)
    arrays: Mapping[str, np.ndarray] | None = field(default=None, repr=False)
    schema: str = ATTACK_SCHEMA

    def correct(self) -> dict[str, np.ndarray]:
        """``{mode: (N,) bool}``: whether each image is classified correctly under each mode."""
        if self.arrays is None:
            raise ValueError("the result was loaded without its predictions file")
        a = self.arrays
        return {
            "clean": a["pred_clean"] == a["labels"],
            "random": a["pred_random"] == a["labels"],
            "worst_of_k": a["pred_worst"] == a["labels"],
            "grid": a["grid_first_fail"] < 0,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "model": self.model.to_dict(),
            "data": self.data.to_dict(),
            "attack": dict(self.attack),
            "transform": self.transform.to_dict(),
            "preprocess": dict(self.preprocess),
            "versions": dict(self.versions),
            "assumptions": list(self.assumptions),
            "run": dict(self.run),
            "summary": dict(self.summary),
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, arrays: Mapping[str, np.ndarray] | None = None
    ) -> AttackResult:
        if data.get("schema") != ATTACK_SCHEMA:
            raise ValueError(
                f"not an attack result: schema is {data.get('schema')!r}; expected "
                f"{ATTACK_SCHEMA!r}"
            )
        return cls(
            model=ModelRecord.from_dict(data["model"]),
            data=DataRecord.from_dict(data["data"]),
            attack=dict(data["attack"]),
            transform=TransformRecord.from_dict(data["transform"]),
            preprocess=dict(data.get("preprocess") or {}),
            summary=dict(data["summary"]),
            versions=dict(data.get("versions", {})),
            assumptions=tuple(data.get("assumptions", ())),
            run=dict(data.get("run", {})),
            arrays=arrays,
        )


def _rate(correct: np.ndarray) -> dict[str, Any]:
    n, c = int(correct.shape[0]), int(correct.sum())
    lo, hi = wilson_interval(c, n)
    return {"accuracy": c / n if n else 0.0, "ci95": [lo, hi], "correct": c}


def attack_result(
    outcomes: np.ndarray,
    *,
    labels: np.ndarray,
    files: Sequence[str] | None,
    config: AttackConfig,
    size: tuple[int, int],
    model: ModelRecord,
    data: DataRecord,
    transform: TransformRecord,
    preprocess: Mapping[str, Any],
    versions: Mapping[str, str],
    assumptions: Sequence[str],
    run: Mapping[str, Any],
) -> AttackResult:
    """An :class:`AttackResult` from ``(6, N)`` outcomes (rows :data:`OUTCOMES`)."""
    h, w = size
    valid = outcomes[0] >= 0  # -1: a file skipped as unreadable
    if not valid.all():
        skipped = [files[i] for i in np.flatnonzero(~valid)] if files is not None else []
        data = replace(data, n=int(valid.sum()), unreadable=tuple(skipped))
    out = {name: outcomes[r][valid] for r, name in enumerate(OUTCOMES)}
    labels = labels[valid]
    index = np.flatnonzero(valid).astype(np.int64)
    arrays: dict[str, np.ndarray] = {"labels": labels, "index": index, **out}
    arrays["random_params"] = config.draws(index, RANDOM_DRAW, h, w)
    worst = np.empty((index.shape[0], 3))
    for j in range(config.k):
        chosen = out["worst_draw"] == j
        if chosen.any():
            worst[chosen] = config.draws(index[chosen], FIRST_WORST_DRAW + j, h, w)
    arrays["worst_params"] = worst
    grid = config.grid_points(h, w)
    fail = np.full((index.shape[0], 3), np.nan)
    for i, g in enumerate(out["grid_first_fail"]):
        if g >= 0:
            p = grid[g]
            fail[i] = (p.angle_deg, *p.shift_px)
    arrays["grid_fail_params"] = fail
    result = AttackResult(
        model=model,
        data=data,
        attack={**config.to_dict(), "box": config.box(h, w), "image_size": [h, w]},
        transform=transform,
        preprocess=preprocess,
        summary={},
        versions=versions,
        assumptions=tuple(assumptions),
        run=dict(run),
        arrays=arrays,
    )
    summary: dict[str, Any] = {"n": int(labels.shape[0])}
    for mode, correct in result.correct().items():
        rate = _rate(correct)
        summary[f"{mode}_accuracy"] = rate["accuracy"]
        summary[f"{mode}_accuracy_ci95"] = rate["ci95"]
        summary[f"{mode}_correct"] = rate["correct"]
    summary["pair_consistency"] = (
        pair_consistency(out["pred_random"], out["pred_pair"]) if labels.shape[0] else None
    )
    summary["k"] = config.k
    summary["grid"] = list(config.grid)
    summary["box"] = config.box(h, w)
    return replace(result, summary=summary)


def write_attack_result(result: AttackResult, path: str | os.PathLike[str]) -> Path:
    """Write ``result`` to ``path`` (JSON) and its per-image outcomes beside it, atomically.

    Raises:
        ValueError: the result has no per-image outcomes.
    """
    if result.arrays is None:
        raise ValueError("attack result has no per-image outcomes to save")
    path = Path(path)
    return write_with_predictions(path, dict(result.arrays), result.to_dict())


def load_attack_result(
    path: str | os.PathLike[str], *, with_predictions: bool = True
) -> AttackResult:
    """Read a result written by :func:`write_attack_result`.

    Raises:
        EvalInputError: missing or invalid file, or not an attack result.
    """
    import json

    path = Path(path)
    try:
        data = loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EvalInputError(f"cannot read attack result {path}: {exc}") from None
    arrays = None
    npz = predictions_path(path)
    if with_predictions and npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError) as exc:
            raise EvalInputError(f"cannot read {npz}: {exc}") from None
    try:
        return AttackResult.from_dict(data, arrays=arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise EvalInputError(f"{path} is not a valid attack result: {exc}") from None
