"""The spatial-attack part of a report: attack groups and their side-by-side table.

Attack results that share data (fingerprint), attack settings (box, ``k``, grid, seed,
canvas padding) and transform convention form one *attack group*: a table of each model's
accuracy under the four modes (clean, random, worst-of-k, grid) with 95 % Wilson intervals
and its pair consistency, and one figure (:func:`geomrobust.reports._fig_attack.attack_accuracy`).
Rows are plain dicts of numbers; the renderers format them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from geomrobust.reports._inputs import AttackEntry, ReportError
from geomrobust.robustness import AttackResult
from geomrobust.robustness._attack_result import MODES
from geomrobust.robustness._compare import attack_settings

__all__ = ["MODE_NAMES", "AttackGroup", "attack_table", "box_text", "group_attacks"]

MODE_NAMES = {"clean": "clean", "random": "random", "worst_of_k": "worst-of-k", "grid": "grid"}
"""How each mode is named in tables and figures."""


@dataclass(frozen=True, eq=False)
class AttackGroup:
    """Attack results on the same data with the same settings and transform convention.

    Attributes:
        slug: Short file-name-safe id (``"a1-engstrom-mnist"``), used for figure names.
        title: Heading, e.g. ``"Spatial attack engstrom-mnist on digits/test"``.
        entries: The results, in the order given.
    """

    slug: str
    title: str
    entries: tuple[AttackEntry, ...]

    @property
    def first(self) -> AttackResult:
        return self.entries[0].result


def _num(value: float) -> str:
    return f"{float(value):g}"


def box_text(result: AttackResult) -> str:
    """``'±30°, ±3 px (x), ±3 px (y); k = 10; grid 5 × 3 × 3'``: the settings in one line."""
    s = attack_settings(result)
    box = s["box"] or {}
    bx, by = box.get("max_shift_px") or (0.0, 0.0)
    shift = f"±{_num(bx)} px" if bx == by else f"±{_num(bx)} px (x), ±{_num(by)} px (y)"
    text = f"±{_num(box.get('max_angle_deg', 0.0))}°, {shift}; k = {s['k']}"
    text += f"; grid {' × '.join(str(v) for v in s['grid'] or ())}; seed {s['seed']}"
    if s["canvas_pad"]:
        text += f"; canvas padded by {s['canvas_pad']} px"
    return text


def _group_key(result: AttackResult) -> str:
    fp = result.data.fingerprint
    t = result.transform
    return json.dumps(
        [
            attack_settings(result),
            [fp.get(k) for k in ("dataset", "split", "n_images", "images_sha256")],
            [t.interpolation, t.padding, t.fill],
        ],
        sort_keys=True,
    )


def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() else "-" for c in text.lower())
    return "-".join(filter(None, out.split("-")))[:40] or "attack"


def group_attacks(entries: Sequence[AttackEntry]) -> list[AttackGroup]:
    """Group attack results by (data, attack settings, transform convention), in order of
    appearance.

    Raises:
        ReportError: the same model appears twice in one group.
    """
    order: dict[str, list[AttackEntry]] = {}
    for entry in entries:
        order.setdefault(_group_key(entry.result), []).append(entry)
    groups = []
    for i, members in enumerate(order.values(), start=1):
        labels = [e.label for e in members]
        for label in labels:
            if labels.count(label) > 1:
                paths = ", ".join(str(e.path) for e in members if e.label == label)
                raise ReportError(
                    f"model {label!r} appears twice in the same attack on the same data "
                    f"({paths}); pass each result once"
                )
        r = members[0].result
        preset = r.attack.get("preset")
        title = f"Spatial attack {preset}" if preset else "Spatial attack"
        title += f" ({box_text(r)}) on {r.data.dataset}/{r.data.split}"
        if r.transform.interpolation != "bilinear" or r.transform.fill is not None:
            title += f", {r.transform.interpolation}"
            if r.transform.fill is not None:
                title += f", fill {r.transform.fill_spec or list(r.transform.fill)}"
        groups.append(AttackGroup(f"a{i}-{_slug(preset or 'attack')}", title, tuple(members)))
    return groups


def attack_table(group: AttackGroup) -> list[dict[str, Any]]:
    """One row per model: ``model``, ``params``, ``n``, ``accuracy`` and ``ci95`` (dicts by
    mode, :data:`~geomrobust.robustness._attack_result.MODES`) and ``pair_consistency``
    (``None`` when no image was attacked)."""
    rows = []
    for e in group.entries:
        s = e.result.summary
        rows.append(
            {
                "model": e.label,
                "params": e.result.model.params,
                "n": int(s["n"]),
                "accuracy": {m: float(s[f"{m}_accuracy"]) for m in MODES},
                "ci95": {m: tuple(float(v) for v in s[f"{m}_accuracy_ci95"]) for m in MODES},
                "pair_consistency": s.get("pair_consistency"),
            }
        )
    return rows
