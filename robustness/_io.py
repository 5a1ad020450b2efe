"""Files of an evaluation: atomic JSON and ``.npz`` writing, loading, and resumable partials.

A result ``RESULT.json`` has its per-image predictions beside it in
``RESULT.predictions.npz``; both are written to a temporary file and renamed into place, the
predictions first, so a JSON file on disk always has its predictions. While a sweep runs,
every finished point is saved in ``RESULT.json.partial/`` (one ``.npy`` per point, each
written atomically; under ``torchrun`` one subfolder per rank, one ``.npy`` per shard), which
``resume=True`` reads back instead of recomputing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from geomrobust._json import loads
from geomrobust.robustness._eval_errors import EvalInputError, ResumeError
from geomrobust.robustness._results import PROB_FIELDS, EvalResult, Predictions

__all__ = [
    "PartialStore",
    "load_predictions",
    "load_result",
    "predictions_path",
    "write_json_atomic",
    "write_pair_result",
    "write_result",
]

log = logging.getLogger("geomrobust.eval")


def predictions_path(json_path: str | os.PathLike[str]) -> Path:
    """``RESULT.predictions.npz`` beside ``RESULT.json`` (other names: ``NAME.predictions.npz``)."""
    path = Path(json_path)
    stem = path.stem if path.suffix == ".json" else path.name
    return path.with_name(f"{stem}.predictions.npz")


def _atomic(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place.

    On failure nothing is left behind; an OS error (a full disk) names ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_with_predictions(
    path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], data: Mapping[str, Any]
) -> Path:
    """Write the predictions file, then the result JSON, each atomically; if the JSON cannot
    be written (a full disk), the predictions file is removed too: no half result is left."""
    path = Path(path)
    npz = predictions_path(path)
    _write_npz_atomic(npz, arrays)
    try:
        return write_json_atomic(path, data)
    except BaseException:
        npz.unlink(missing_ok=True)
        raise


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
    return write_with_predictions(
        path,
        {
            "labels": pred.labels,
            "clean": pred.clean,
            "predictions": pred.points,
            "scale": np.array([p.scale for p in pts]),
            "angle_deg": np.array([p.angle_deg for p in pts]),
            "shift_px": np.array([p.shift_px for p in pts]).reshape(-1, 2),
            **_prob_arrays(pred),
        },
        result.to_dict(),
    )


def _prob_arrays(pred: Predictions) -> dict[str, np.ndarray]:
    """``p_true``, ``p_predicted``, ``p_clean_top1`` ``(P, N)`` and their ``clean_`` ``(N,)``
    float32 softmax probabilities, if the predictions carry them."""
    if pred.probs is None:
        return {}
    arrays = {}
    for i, f in enumerate(PROB_FIELDS):
        arrays[f"p_{f}"] = pred.probs[..., i].astype(np.float32)
        arrays[f"clean_p_{f}"] = pred.clean_probs[:, i].astype(np.float32)
    return arrays


def write_pair_result(result: Any, path: str | os.PathLike[str]) -> Path:
    """Write a :class:`~geomrobust.robustness._pairs_eval.PairResult` to ``path`` (JSON) and its
    predictions beside it (``labels`` and ``predictions``; pair ``k`` has class
    ``k % K``), both atomically.

    Raises:
        ValueError: ``result`` carries no predictions.
    """
    path = Path(path)
    if result.predictions is None:
        raise ValueError("pair result has no predictions to save; evaluate_pairs() attaches them")
    labels = np.arange(result.num_pairs) % len(result.class_names)
    arrays = {"labels": labels, "predictions": result.predictions}
    return write_with_predictions(path, arrays, result.to_dict())


def load_pair_result(path: str | os.PathLike[str], *, with_predictions: bool = True) -> Any:
    """Read a pair result written by :func:`write_pair_result` (and, by default and when the
    file is there, its predictions).

    Returns:
        A :class:`~geomrobust.robustness.PairResult`; its ``predictions`` are ``None`` when
        they were not asked for or no predictions file lies beside the JSON.

    Raises:
        EvalInputError: missing file, invalid JSON, not a pair result, or an unreadable
            predictions file.
    """
    from geomrobust.robustness._pairs_eval import PAIRS_SCHEMA, PairResult

    path = Path(path)
    if not path.is_file():
        raise EvalInputError(
            f"no result file at {path}; pass the JSON written by 'geomrobust eval-pairs'"
        )
    try:
        data = loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EvalInputError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != PAIRS_SCHEMA:
        raise EvalInputError(f"{path} is not a {PAIRS_SCHEMA} result")
    predictions = None
    pred_file = predictions_path(path)
    if with_predictions and pred_file.exists():
        try:
            with np.load(pred_file, allow_pickle=False) as npz:
                predictions = npz["predictions"].astype(np.int64)
        except (OSError, ValueError, KeyError) as exc:
            raise EvalInputError(f"{pred_file} cannot be read ({exc}); rerun eval-pairs") from None
    try:
        return PairResult.from_dict(data, predictions=predictions)
    except (KeyError, TypeError, ValueError) as exc:
        raise EvalInputError(f"{path} is not a complete pair-classifier result: {exc}") from None


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
            probs = clean_probs = None
            if "p_true" in data.files:  # results written before probabilities had none
                probs = np.stack([data[f"p_{f}"] for f in PROB_FIELDS], axis=-1)
                clean_probs = np.stack([data[f"clean_p_{f}"] for f in PROB_FIELDS], axis=-1)
            return Predictions(
                labels=data["labels"].astype(np.int64),
                clean=data["clean"].astype(np.int64),
                points=data["predictions"].astype(np.int64),
                clean_probs=clean_probs,
                probs=probs,
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
        data = loads(path.read_text())
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


_PIECE = re.compile(r"^(clean|point-(\d+))(?:\.(\d+)-(\d+))?$")


class PartialStore:
    """Finished work of an interrupted evaluation, in a folder beside the output.

    Work is saved in pieces: a row (``point-00003.npy``, the predictions of every image
    under row 3 of :func:`~geomrobust.robustness._engine.work_rows`) or part of one
    (``point-00003.0000256-0000512.npy``, images ``[256, 512)``). A single process writes
    into ``folder`` itself; rank ``r`` of a distributed run writes into its own subfolder
    ``folder/rank-0000r`` (``part``), so ranks never write the same file. Resuming reads the
    pieces of every source it can see (``folder`` and all its ``rank-*`` subfolders, each
    with its own ``key.json``), so work finished by any number of ranks is reused.

    Args:
        folder: The folder (``RESULT.json.partial``).
        key: JSON-ready identity of the run (checkpoint, data, sweep, options); a resumed
            run must have the same key.
        n_images: ``N``; a saved piece that does not fit ``[0, N)`` is ignored (recomputed).
        part: Subfolder this writer owns (``"rank-00001"``); ``None``: ``folder`` itself.
        check: ``check(row, values)`` returns what is wrong with a saved piece's values
            (predictions out of range, say), or ``None``; a piece with a problem is ignored
            with a warning naming the file, and recomputed.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        key: Mapping[str, Any],
        n_images: int,
        *,
        part: str | None = None,
        check: Callable[[int | str, np.ndarray], str | None] | None = None,
    ):
        self.check = check
        self.folder = Path(folder)
        self.own = self.folder / part if part else self.folder
        self.key = _normalise(dict(key))
        self.n_images = n_images
        self._pieces: dict[int | str, list[tuple[int, int, np.ndarray]]] = {}

    def start(self, *, resume: bool) -> dict[int | str, np.ndarray]:
        """Open the store; returns the rows already finished (``"clean"`` or point index).

        Without ``resume`` this writer's folder is discarded (a single process: the whole
        ``folder``). With it, the pieces of every source are read; :meth:`lookup` finds
        them.

        Raises:
            ResumeError: ``resume`` and a saved partial belongs to another run.
        """
        sources = self._sources() if resume else []
        if sources:
            for source in sources:
                self._check_key(source)
            for source in sources:
                self._read(source)
            log.info(
                "resuming: %d finished piece(s) in %s",
                sum(len(v) for v in self._pieces.values()),
                self.folder,
            )
            if not (self.own / "key.json").is_file():
                self._create(keep_subfolders=True)
            done = {}
            for row in self._pieces:
                values = self.lookup(row, 0, self.n_images)
                if values is not None:
                    done[row] = values
            return done
        if resume:
            log.info("nothing to resume in %s; starting from the first point", self.folder)
        elif self.own.exists():
            log.warning(
                "discarding earlier partial results in %s (resume=True reuses them)", self.own
            )
        self._create()
        return {}

    def _create(self, *, keep_subfolders: bool = False) -> None:
        """Make this writer's folder with its key; ``keep_subfolders`` keeps the ranks'
        subfolders (being resumed from) and drops only unkeyed files of its own."""
        if keep_subfolders and self.own.is_dir():
            for file in self.own.glob("*.npy"):
                file.unlink()
        elif self.own.exists():
            self.discard()
        self.own.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.own / "key.json", self.key)

    def _sources(self) -> list[Path]:
        """Folders with a ``key.json``: ``folder`` and its ``rank-*`` subfolders."""
        candidates = [self.folder]
        if self.folder.is_dir():
            candidates += sorted(p for p in self.folder.glob("rank-*") if p.is_dir())
        return [p for p in candidates if (p / "key.json").is_file()]

    def _check_key(self, source: Path) -> None:
        try:
            saved = json.loads((source / "key.json").read_text())
        except (OSError, json.JSONDecodeError):
            saved = None
        if saved == self.key:
            return
        differs = sorted(
            k for k in set(self.key) | set(saved or {}) if (saved or {}).get(k) != self.key.get(k)
        )
        raise ResumeError(
            f"cannot resume: the partial results in {source} were computed with a different "
            f"{', '.join(differs) or 'setup'}; rerun with resume=False to start over"
        )

    def _read(self, source: Path) -> None:
        for file in sorted(source.glob("*.npy")):
            match = _PIECE.match(file.stem)
            if match is None:
                continue
            name, index, start, stop = match.groups()
            row: int | str = "clean" if name == "clean" else int(index)
            lo = 0 if start is None else int(start)
            hi = self.n_images if stop is None else int(stop)
            try:
                values = np.load(file, allow_pickle=False)
            except (OSError, ValueError):
                log.warning("ignoring unreadable partial file %s", file)
                continue
            if not (0 <= lo < hi <= self.n_images and values.ndim >= 1 and len(values) == hi - lo):
                log.warning("ignoring partial file %s: it does not fit this run; recomputed", file)
                continue
            problem = None if self.check is None else self.check(row, values)
            if problem is not None:
                log.warning(
                    "warning: ignoring corrupt partial file %s (%s); its images are recomputed",
                    file,
                    problem,
                )
                continue
            self._pieces.setdefault(row, []).append((lo, hi, values))

    def lookup(self, row: int | str, start: int, stop: int) -> np.ndarray | None:
        """Saved values of images ``[start, stop)`` under ``row`` (their first axis; any
        trailing shape and dtype, as saved), or ``None`` if the pieces read by :meth:`start`
        do not cover them all (or disagree in shape or dtype)."""
        pieces = self._pieces.get(row, ())
        if not pieces:
            return None
        like = pieces[0][2]
        if any(v.shape[1:] != like.shape[1:] or v.dtype != like.dtype for _, _, v in pieces):
            return None
        out = np.empty((stop - start, *like.shape[1:]), dtype=like.dtype)
        covered = np.zeros(stop - start, dtype=bool)
        for lo, hi, values in pieces:
            a, b = max(lo, start), min(hi, stop)
            if a < b:
                out[a - start : b - start] = values[a - lo : b - lo]
                covered[a - start : b - start] = True
        return out if covered.all() else None

    def save(self, key: int | str, row: np.ndarray) -> None:
        """Save one finished row of predictions atomically."""
        self.save_piece(key, 0, self.n_images, row)

    def save_piece(self, row: int | str, start: int, stop: int, values: np.ndarray) -> None:
        """Save the values of images ``[start, stop)`` under ``row`` atomically: ``(n,)``
        predictions, or ``(n, ...)`` with more per image (an eval's probabilities)."""
        name = "clean" if row == "clean" else f"point-{int(row):05d}"
        if (start, stop) != (0, self.n_images):
            name += f".{start:07d}-{stop:07d}"
        _atomic(self.own / f"{name}.npy", lambda f: np.save(f, values, allow_pickle=False))

    def discard(self) -> None:
        """Remove this writer's folder (after success, or to start over)."""
        if self.own.is_dir():
            shutil.rmtree(self.own)
        elif self.own.exists():
            self.own.unlink()
