"""Files of an evaluation: atomic JSON and ``.npz`` writing, loading, and resumable partials.

A result ``RESULT.json`` has its per-image predictions beside it in
``RESULT.predictions.npz``; both are written to a temporary file and renamed into place, the
predictions first, so a JSON file on disk always has its predictions. While a sweep runs,
every finished point is saved in ``RESULT.json.partial/`` (one ``.npy`` per point, each
written atomically), which ``resume=True`` reads back instead of recomputing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from robustness._eval_errors import EvalInputError, ResumeError
from robustness._results import EvalResult, Predictions

__all__ = [
    "PartialStore",
    "load_predictions",
    "load_result",
    "predictions_path",
    "write_json_atomic",
    "write_result",
]

log = logging.getLogger("geomrobust.eval")


def predictions_path(json_path: str | os.PathLike[str]) -> Path:
    """``RESULT.predictions.npz`` beside ``RESULT.json`` (other names: ``NAME.predictions.npz``)."""
    path = Path(json_path)
    stem = path.stem if path.suffix == ".json" else path.name
    return path.with_name(f"{stem}.predictions.npz")


def _atomic(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(path: str | os.PathLike[str], data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON (no NaN) atomically; returns the path."""
    path = Path(path)
    text = json.dumps(data, indent=1, allow_nan=False) + "\n"
    _atomic(path, lambda f: f.write(text.encode()))
    return path


def _write_npz_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    _atomic(path, lambda f: np.savez_compressed(f, **arrays))


def write_result(result: EvalResult, path: str | os.PathLike[str]) -> Path:
    """Write ``result`` to ``path`` (JSON) and its predictions beside it, both atomically.

    Raises:
        ValueError: ``result`` carries no predictions.
    """
    path = Path(path)
    if result.predictions is None:
        raise ValueError("result has no predictions to save; evaluate() always attaches them")
    pts = result.sweep.points
    pred = result.predictions
    _write_npz_atomic(
        predictions_path(path),
        {
            "labels": pred.labels,
            "clean": pred.clean,
            "predictions": pred.points,
            "scale": np.array([p.scale for p in pts]),
            "angle_deg": np.array([p.angle_deg for p in pts]),
            "shift_px": np.array([p.shift_px for p in pts]).reshape(-1, 2),
        },
    )
    return write_json_atomic(path, result.to_dict())


def load_predictions(path: str | os.PathLike[str]) -> Predictions:
    """Read a ``.predictions.npz`` file.

    Raises:
        EvalInputError: missing or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise EvalInputError(
            f"no predictions file at {path}; it is written beside the result JSON by "
            "'geomrobust eval' (rerun the evaluation to recreate it)"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            return Predictions(
                labels=data["labels"].astype(np.int64),
                clean=data["clean"].astype(np.int64),
                points=data["predictions"].astype(np.int64),
            )
    except (OSError, ValueError, KeyError) as exc:
        raise EvalInputError(f"{path} is not a readable predictions file ({exc})") from None


def load_result(path: str | os.PathLike[str], *, with_predictions: bool = True) -> EvalResult:
    """Read a result JSON (and, by default, its predictions file).

    Raises:
        EvalInputError: missing file, invalid JSON, wrong schema, or missing predictions.
    """
    path = Path(path)
    if not path.is_file():
        raise EvalInputError(
            f"no result file at {path}; pass the JSON written by 'geomrobust eval'"
        )
    try:
        data = json.loads(path.read_text())
        result = EvalResult.from_dict(data)
    except json.JSONDecodeError as exc:
        raise EvalInputError(f"{path} is not valid JSON ({exc})") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise EvalInputError(f"{path} is not a geomrobust evaluation result: {exc}") from None
    if not with_predictions:
        return result
    pred = load_predictions(predictions_path(path))
    if pred.points.shape != (len(result.points), result.data.n):
        raise EvalInputError(
            f"{predictions_path(path)} holds predictions of shape {pred.points.shape}; "
            f"{path} needs ({len(result.points)}, {result.data.n}); rerun the evaluation"
        )
    return EvalResult.from_dict(data, predictions=pred)


def _normalise(value: Any) -> Any:
    return json.loads(json.dumps(value, allow_nan=False))


class PartialStore:
    """Finished points of an interrupted evaluation, in a folder beside the output.

    Args:
        folder: The folder (``RESULT.json.partial``).
        key: JSON-ready identity of the run (checkpoint, data, sweep, options); a resumed
            run must have the same key.
        n_images: ``N``; a saved row of another length is ignored (recomputed).
    """

    def __init__(self, folder: str | os.PathLike[str], key: Mapping[str, Any], n_images: int):
        self.folder = Path(folder)
        self.key = _normalise(dict(key))
        self.n_images = n_images

    def start(self, *, resume: bool) -> dict[int | str, np.ndarray]:
        """Open the store; returns the rows already finished (``"clean"`` or point index).

        Without ``resume`` any earlier partial is discarded.

        Raises:
            ResumeError: ``resume`` and the saved partial belongs to another run.
        """
        key_file = self.folder / "key.json"
        if resume and key_file.is_file():
            try:
                saved = json.loads(key_file.read_text())
            except json.JSONDecodeError:
                saved = None
            if saved != self.key:
                differs = sorted(
                    k
                    for k in set(self.key) | set(saved or {})
                    if (saved or {}).get(k) != self.key.get(k)
                )
                raise ResumeError(
                    f"cannot resume: the partial results in {self.folder} were computed with "
                    f"a different {', '.join(differs) or 'setup'}; rerun without --resume to "
                    "start over"
                )
            return self._load()
        if resume:
            log.info("nothing to resume in %s; starting from the first point", self.folder)
        elif self.folder.exists():
            log.warning("discarding earlier partial results in %s (use --resume)", self.folder)
        self.discard()
        self.folder.mkdir(parents=True)
        write_json_atomic(key_file, self.key)
        return {}

    def _load(self) -> dict[int | str, np.ndarray]:
        done: dict[int | str, np.ndarray] = {}
        for file in sorted(self.folder.glob("*.npy")):
            name = file.stem
            key: int | str = "clean" if name == "clean" else int(name.removeprefix("point-"))
            try:
                row = np.load(file, allow_pickle=False)
            except (OSError, ValueError):
                log.warning("ignoring unreadable partial file %s", file)
                continue
            if row.shape == (self.n_images,):
                done[key] = row.astype(np.int64)
        log.info("resuming: %d finished row(s) in %s", len(done), self.folder)
        return done

    def save(self, key: int | str, row: np.ndarray) -> None:
        """Save one finished row of predictions atomically."""
        name = "clean" if key == "clean" else f"point-{int(key):05d}"
        _atomic(self.folder / f"{name}.npy", lambda f: np.save(f, row, allow_pickle=False))

    def discard(self) -> None:
        """Remove the folder (after success, or to start over)."""
        if self.folder.is_dir():
            shutil.rmtree(self.folder)
        elif self.folder.exists():
            self.folder.unlink()
