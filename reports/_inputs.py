"""What a report is made of: result files, the label of each model, and sweep groups.

A report takes any mix of evaluation results (``geomrobust.eval/1``), attack results
(``geomrobust.attack/1``) and pair-classifier results (``geomrobust.pairs/1``). Evaluation
results that share data, sweep and transform convention form a *group*: one table and one set
of figures, models side by side (attack results are grouped likewise, by data and attack
settings, in :mod:`geomrobust.reports._attack`). A model keeps one label (and one colour)
across every group it appears in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from geomrobust._json import loads
from geomrobust.robustness import (
    ATTACK_SCHEMA,
    EVAL_SCHEMA,
    PAIRS_SCHEMA,
    AttackResult,
    EvalInputError,
    EvalResult,
    PairResult,
    load_attack_result,
    load_pair_result,
    load_result,
    predictions_path,
)

__all__ = [
    "AttackEntry",
    "EvalEntry",
    "Group",
    "PairEntry",
    "ReportError",
    "ReportInputs",
    "group_results",
    "load_inputs",
    "read_inputs",
]

_Result = EvalResult | PairResult | AttackResult


class ReportError(ValueError):
    """A report cannot be made from what was given; the message says what to change."""


@dataclass(frozen=True, eq=False)
class EvalEntry:
    """One evaluation result in a report.

    Attributes:
        label: The model's name in the report (unique per model across the report).
        path: The result file.
        result: The result, with predictions when its ``.predictions.npz`` was found.
    """

    label: str
    path: Path
    result: EvalResult


@dataclass(frozen=True, eq=False)
class PairEntry:
    """One pair-classifier result in a report (see :class:`EvalEntry`)."""

    label: str
    path: Path
    result: PairResult


@dataclass(frozen=True, eq=False)
class AttackEntry:
    """One spatial-attack result in a report (see :class:`EvalEntry`)."""

    label: str
    path: Path
    result: AttackResult


@dataclass(frozen=True)
class ReportInputs:
    """Every result of a report, by kind, each in the order given.

    Attributes:
        evals, pairs, attacks: The entries; a model has the same label in all three.
        notes: What the report will lack (a missing predictions file, say).
    """

    evals: tuple[EvalEntry, ...]
    pairs: tuple[PairEntry, ...]
    attacks: tuple[AttackEntry, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class Group:
    """Results on the same data, sweep and transform convention.

    Attributes:
        slug: Short file-name-safe id (``"g1-scale"``), used for figure names.
        title: Heading, e.g. ``"Scale sweep (11 points) on digits/test"``.
        entries: One result per model, in the order given; the first is the reference of
            comparisons. A model given with several training seeds is shown by its lowest
            seed's result.
        seeds: For models given with several training seeds: the label and every seed's
            result, lowest seed first (:func:`geomrobust.robustness.seed_groups`).
    """

    slug: str
    title: str
    entries: tuple[EvalEntry, ...]
    seeds: tuple[tuple[str, tuple[EvalEntry, ...]], ...] = ()

    @property
    def first(self) -> EvalResult:
        return self.entries[0].result


def _read(path: Path) -> dict:
    if not path.is_file():
        what = "a folder" if path.is_dir() else "no such file"
        raise ReportError(
            f"{path}: {what}; pass the RESULT.json files written by 'geomrobust eval', "
            "'geomrobust attack' or 'geomrobust eval-pairs'"
        )
    try:
        data = loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path} is not valid JSON ({exc}); is it a geomrobust result?") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path} holds JSON {type(data).__name__}, not a geomrobust result")
    return data


def _load_eval(path: Path) -> EvalResult:
    pred_file = predictions_path(path)
    try:
        if pred_file.exists():
            return load_result(path)
        return load_result(path, with_predictions=False)
    except EvalInputError as exc:
        raise ReportError(str(exc)) from None


def _load_pairs(path: Path) -> PairResult:
    try:
        return load_pair_result(path)
    except EvalInputError as exc:
        raise ReportError(str(exc)) from None


def _load_attack(path: Path) -> AttackResult:
    try:
        return load_attack_result(path, with_predictions=False)  # the summary is enough
    except EvalInputError as exc:
        raise ReportError(str(exc)) from None


def _identity(result: _Result, path: Path) -> tuple[str, str]:
    """A model is its name and training recipe (so that its training seeds share a label),
    else its weights (sha256, else the checkpoint as given); results that record none of
    them are taken to be of the same model when their names agree."""
    model = result.model
    recipe = getattr(model, "training_recipe", None)
    return model.name, recipe or model.checkpoint_sha256 or model.checkpoint or ""


def _short_checkpoint(checkpoint: str | None, path: Path) -> str:
    if checkpoint and checkpoint.startswith("ref:"):
        return checkpoint[4:]
    if checkpoint:
        return Path(checkpoint).stem
    return path.stem


def _labels(items: Sequence[tuple[Path, _Result]]) -> list[str]:
    """One label per model identity: its name, else its checkpoint when names collide."""
    identities: dict[tuple[str, str], str] = {}
    by_name: dict[str, list[tuple[str, str]]] = {}
    for path, result in items:
        key = _identity(result, path)
        if key not in identities:
            identities[key] = _short_checkpoint(result.model.checkpoint, path)
            by_name.setdefault(key[0], []).append(key)
    label_of: dict[tuple[str, str], str] = {}
    taken: set[str] = set()
    for name, keys in by_name.items():
        for key in keys:
            label = name
            if len(keys) > 1:
                short = identities[key]
                label = short if short != name else f"{name} ({key[1][:8]})"
            base, k = label, 2
            while label in taken:
                label, k = f"{base} #{k}", k + 1
            taken.add(label)
            label_of[key] = label
    return [label_of[_identity(result, path)] for path, result in items]


def read_inputs(paths: Sequence[str | os.PathLike[str]]) -> ReportInputs:
    """Read result files of any kind a report takes.

    Raises:
        ReportError: no paths, a path given twice, a missing or unreadable file, or a JSON
            file that is not a geomrobust result.
    """
    if not paths:
        raise ReportError("no results given; pass one or more RESULT.json files")
    seen: dict[Path, Path] = {}
    loaded: list[tuple[Path, _Result]] = []
    notes: list[str] = []
    for raw in paths:
        path = Path(raw)
        key = path.resolve()
        if key in seen:
            raise ReportError(f"{path} is given twice (also as {seen[key]}); pass each once")
        seen[key] = path
        data = _read(path)
        schema = data.get("schema")
        if schema == EVAL_SCHEMA:
            result: _Result = _load_eval(path)
            if result.predictions is None:
                notes.append(
                    f"{path}: no {predictions_path(path).name} beside it, so its comparisons "
                    "and example gallery are left out"
                )
        elif schema == PAIRS_SCHEMA:
            result = _load_pairs(path)
        elif schema == ATTACK_SCHEMA:
            result = _load_attack(path)
        else:
            raise ReportError(
                f"{path} has schema {schema!r}; a report takes {EVAL_SCHEMA!r} results "
                f"('geomrobust eval'), {ATTACK_SCHEMA!r} results ('geomrobust attack') and "
                f"{PAIRS_SCHEMA!r} results ('geomrobust eval-pairs')"
            )
        loaded.append((path, result))
    labelled = list(zip(_labels(loaded), loaded, strict=True))
    return ReportInputs(
        evals=tuple(EvalEntry(lb, p, r) for lb, (p, r) in labelled if isinstance(r, EvalResult)),
        pairs=tuple(PairEntry(lb, p, r) for lb, (p, r) in labelled if isinstance(r, PairResult)),
        attacks=tuple(
            AttackEntry(lb, p, r) for lb, (p, r) in labelled if isinstance(r, AttackResult)
        ),
        notes=tuple(notes),
    )


def load_inputs(
    paths: Sequence[str | os.PathLike[str]],
) -> tuple[list[EvalEntry], list[PairEntry], list[str]]:
    """Read evaluation and pair-classifier result files (:func:`read_inputs` reads attack
    results too).

    Returns:
        ``(evaluations, pair results, notes)``; notes say what a report will lack (a missing
        predictions file, say).

    Raises:
        ReportError: as :func:`read_inputs`, and for an attack result among ``paths``.
    """
    inputs = read_inputs(paths)
    if inputs.attacks:
        shown = ", ".join(str(e.path) for e in inputs.attacks[:3])
        raise ReportError(
            f"{shown}: attack results; load_inputs returns eval and pair results only, "
            "read_inputs reads every kind"
        )
    return list(inputs.evals), list(inputs.pairs), list(inputs.notes)


_SWEEP_TITLES = {
    "scale": "Scale sweep",
    "rotation": "Rotation sweep",
    "translation": "Translation sweep",
    "scale-rotation": "Scale × rotation grid",
}


def _group_key(result: EvalResult) -> str:
    fp = result.data.fingerprint
    t = result.transform
    return json.dumps(
        [
            [p.to_dict() for p in result.sweep.points],
            [fp.get(k) for k in ("dataset", "split", "n_images", "images_sha256")],
            [t.interpolation, t.padding, t.fill],
        ],
        sort_keys=True,
    )


def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() else "-" for c in text.lower())
    return "-".join(filter(None, out.split("-")))[:40] or "sweep"


def group_results(entries: Sequence[EvalEntry]) -> list[Group]:
    """Group results by (sweep points, data, transform convention), in order of appearance.

    Results of one model with different training seeds (the same label, distinct
    ``model.training_seed``) become one entry and the group's :attr:`Group.seeds`.

    Raises:
        ReportError: the same model appears twice in one group other than as distinct
            training seeds.
    """
    order: dict[str, list[EvalEntry]] = {}
    for entry in entries:
        order.setdefault(_group_key(entry.result), []).append(entry)
    groups = []
    for i, given in enumerate(order.values(), start=1):
        by_label: dict[str, list[EvalEntry]] = {}
        for entry in given:
            by_label.setdefault(entry.label, []).append(entry)
        seeds = []
        for label, same in by_label.items():
            if len(same) == 1:
                continue
            trained = [e.result.model.training_seed for e in same]
            if None in trained or len(set(trained)) < len(trained):
                paths = ", ".join(str(e.path) for e in same)
                raise ReportError(
                    f"model {label!r} appears twice on the same sweep and data ({paths}); "
                    "pass each result once (results of one model with different training "
                    "seeds are shown together only when their checkpoints record the seeds)"
                )
            seeds.append((label, tuple(sorted(same, key=lambda e: e.result.model.training_seed))))
        first_of = dict(seeds)
        members = [first_of.get(label, same)[0] for label, same in by_label.items()]
        r = members[0].result
        name = r.sweep.name or "custom"
        title = f"{_SWEEP_TITLES.get(name, f'Sweep {name!r}')} ({len(r.sweep)} points)"
        title += f" on {r.data.dataset}/{r.data.split}"
        if r.transform.interpolation != "bilinear" or r.transform.fill is not None:
            title += f", {r.transform.interpolation}"
            if r.transform.fill is not None:
                title += f", fill {r.transform.fill_spec or list(r.transform.fill)}"
        groups.append(Group(f"g{i}-{_slug(name)}", title, tuple(members), tuple(seeds)))
    return groups
