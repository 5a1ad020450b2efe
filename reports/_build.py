"""Build a report folder: ``index.html``, ``report.md``, ``summary.csv`` and ``figures/``."""

from __future__ import annotations

import logging
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geomrobust.reports._attack import AttackGroup, attack_table, group_attacks
from geomrobust.reports._document import (
    AttackSection,
    FigureRecord,
    GroupSection,
    PairSection,
    ReportDocument,
)
from geomrobust.reports._flips import flip_table
from geomrobust.reports._html import render_html
from geomrobust.reports._inputs import EvalEntry, Group, ReportError, group_results, read_inputs
from geomrobust.reports._markdown import render_markdown
from geomrobust.reports._seeds import seed_table
from geomrobust.reports._tables import model_table, pair_table, summary_csv, summary_rows

__all__ = ["REPORT_FILES", "ReportFiles", "build_report"]

log = logging.getLogger("geomrobust.report")

REPORT_FILES = ("index.html", "report.md", "summary.csv", "figures")

# Image shape of the built-in datasets, for FLOPs when the data itself is not at hand.
_KNOWN_SHAPES = {
    "digits": (1, 28, 28),
    "mnist": (1, 28, 28),
    "fashion-mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
}


@dataclass(frozen=True)
class ReportFiles:
    """Where a report was written.

    Attributes:
        folder: The report folder.
        html, markdown, csv: ``index.html``, ``report.md``, ``summary.csv``.
        figures: Every PNG and SVG written under ``figures/``.
        notes: What the report left out and why.
    """

    folder: Path
    html: Path
    markdown: Path
    csv: Path
    figures: tuple[Path, ...]
    notes: tuple[str, ...]


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{round(255 * min(max(c, 0.0), 1.0)):02x}" for c in rgb[:3])


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ReportError(f"out {out} exists and is not a folder; choose another path")
    existing = [name for name in REPORT_FILES if (out / name).exists()]
    if existing and not force:
        raise ReportError(
            f"{out} already holds a report ({', '.join(existing)}); pass force=True to "
            "replace it or choose another out"
        )


class _DataCache:
    """Loads each evaluated split once, and only if it is the data that was evaluated."""

    def __init__(self, root: Path | None, extra: Sequence[Any] = ()) -> None:
        self.root = root
        self.extra = list(extra)
        self._loaded: dict[tuple[str, str, str], Any] = {}
        self.notes: list[str] = []

    def get(self, entry: EvalEntry):
        from geomrobust.transforms.datasets import DatasetError, load_dataset

        d = entry.result.data
        key = (d.dataset, d.split, str(d.fingerprint.get("images_sha256")))
        if d.folder is not None:  # an image folder: listed again, checked, decoded on demand
            key = (d.dataset, d.split, str(d.fingerprint.get("content_sha256")))
        if key in self._loaded:
            return self._loaded[key]
        if d.folder is not None:
            self._loaded[key] = self._folder(d)
            return self._loaded[key]
        data = None
        for candidate in self.extra:
            if _same_data(candidate.fingerprint, d.fingerprint):
                self._loaded[key] = candidate
                return candidate
        try:
            loaded = load_dataset(d.dataset, split=d.split, root=self.root)
        except (DatasetError, ValueError, OSError) as exc:
            self.notes.append(
                f"the example gallery of {d.dataset}/{d.split} is left out: the data could not "
                f"be loaded ({exc}); pass data_root= with the folder the evaluation used"
            )
        else:
            fp = loaded.fingerprint
            if _same_data(fp, d.fingerprint):
                data = loaded
            else:
                self.notes.append(
                    f"the example gallery of {d.dataset}/{d.split} is left out: the data found "
                    f"({fp.n_images} images) is not the data that was evaluated "
                    f"({d.fingerprint.get('n_images')} images, other checksums)"
                )
        self._loaded[key] = data
        return data

    def _folder(self, d):
        from geomrobust.transforms.datasets import DatasetError, reopen_image_folder

        try:
            return reopen_image_folder(d.to_dict(), root=self.root)
        except (DatasetError, OSError, KeyError) as exc:
            self.notes.append(
                f"the example gallery of the image folder {d.split!r} is left out: {exc}; pass "
                "data_root= with the folder the evaluation used"
            )
            return None


def _input_shape(data, preprocess) -> tuple[int, ...] | None:
    """``(C, H, W)`` the model saw: the data's, after the recorded resize and crop; for an
    image folder only a crop fixes it."""
    from geomrobust.transforms.datasets import Preprocess

    pre = Preprocess.from_dict(preprocess) if preprocess else Preprocess()
    if hasattr(data, "image_shape"):
        c, h, w = data.image_shape
        return (c, *pre.output_size(h, w))
    return (data.channels, *pre.crop) if pre.crop is not None else None


def _same_data(fp, record) -> bool:
    """Whether a loaded dataset's fingerprint is that of the evaluated data (a dict)."""
    return (fp.images_sha256, fp.labels_sha256, fp.n_images) == (
        record.get("images_sha256"),
        record.get("labels_sha256"),
        record.get("n_images"),
    )


def _flops(entry: EvalEntry, data) -> int | None:
    """FLOPs per image: from the checkpoint's own architecture when it can be found and
    matches the recorded sha256, else from the registry entry at the data's image shape."""
    import torch

    from geomrobust.models import count_flops, get_model_info, load_checkpoint
    from geomrobust.robustness import resolve_checkpoint_path
    from geomrobust.transforms.datasets import file_sha256

    r = entry.result
    shape = _KNOWN_SHAPES.get(r.data.dataset)
    if data is not None:
        shape = _input_shape(data, r.preprocess)
    if shape is None:
        return None
    ckpt = r.model.checkpoint
    if ckpt:
        try:
            path = resolve_checkpoint_path(ckpt)
            if r.model.checkpoint_sha256 in (None, file_sha256(path)):
                net, _ = load_checkpoint(path, device="cpu")
                return count_flops(net, torch.zeros(1, *shape))
        except Exception as exc:  # a report must not fail on a checkpoint that moved
            log.debug("FLOPs of %s from its checkpoint failed: %s", entry.label, exc)
    try:
        info = get_model_info(
            r.model.name,
            in_channels=shape[0],
            num_classes=r.model.num_classes,
            input_size=shape[1:],
        )
    except (ValueError, TypeError, KeyError):
        return None
    return int(info.flops)


def _class_names(entry: EvalEntry, data) -> list[str] | None:
    names = entry.result.model.class_names
    if names:
        return list(names)
    return list(data.classes) if data is not None and data.classes else None


class _FigureWriter:
    def __init__(self, folder: Path, progress: Callable[[], None]) -> None:
        self.folder = folder
        self.progress = progress
        self.written: list[Path] = []

    def add(self, target: list[FigureRecord], fig, stem: str, title: str, caption: str) -> None:
        from geomrobust.reports._figures import save_figure

        self.progress()
        if fig is None:
            return
        png, svg = save_figure(fig, self.folder, stem)
        self.written += [png, svg]
        target.append(FigureRecord(title, caption, png, svg))


def _slug(label: str, index: int) -> str:
    text = "".join(c if c.isalnum() else "-" for c in label.lower())
    return f"m{index}-" + "-".join(filter(None, text.split("-")))[:32]


_AXES = {
    "scale": ("Accuracy against scale", "scale factor about the image centre"),
    "angle": ("Accuracy against rotation", "angle in degrees, positive counter-clockwise"),
    "shift": ("Accuracy against shift", "shift in pixels, x right and y down"),
}


def _group_figures(
    group: Group,
    writer: _FigureWriter,
    colours,
    data_cache: _DataCache,
    examples: int,
    model_index: dict[str, int],
) -> list[FigureRecord]:
    from geomrobust.reports import _figures as F

    figs: list[FigureRecord] = []
    named = [(e.label, e.result) for e in group.entries]
    g = group.slug
    for axis, (title, unit) in _AXES.items():
        writer.add(
            figs,
            F.accuracy_curve(named, axis, colours=colours),
            f"{g}-accuracy-{axis}",
            title,
            f"Accuracy (%) of each model against {unit}; the band is the 95 % Wilson "
            "interval and the dashed line marks the untransformed images.",
        )
    first_label, first = named[0]
    for label, result in named:
        m = _slug(label, model_index[label])
        writer.add(
            figs,
            F.scale_rotation_heatmap(result, label),
            f"{g}-heatmap-{m}",
            f"Scale × rotation accuracy of {label}",
            "Accuracy (%) at each scale and angle of the grid.",
        )
    for label, result in named[1:]:
        m = _slug(label, model_index[label])
        writer.add(
            figs,
            F.heatmap_difference((first_label, first), (label, result)),
            f"{g}-difference-{m}",
            f"{label} minus {first_label}",
            f"Accuracy difference in percentage points over the grid ({label} minus "
            f"{first_label}); blue cells favour {label}, red ones {first_label}; * marks a "
            "significant difference (exact McNemar, Holm-corrected).",
        )
    data_of = {e.label: data_cache.get(e) for e in group.entries}
    class_names = _class_names(group.entries[0], data_of[first_label])
    for entry in group.entries:
        m = _slug(entry.label, model_index[entry.label])
        writer.add(
            figs,
            F.confusion_matrices(entry.result, entry.label, class_names=class_names),
            f"{g}-confusion-{m}",
            f"Confusion matrices of {entry.label}",
            "Rows are true classes, columns predictions; colours are row-normalised (recall) "
            "and cells give counts. Left: untransformed images; right: the sweep's worst point.",
        )
    writer.add(
        figs,
        F.per_class_drop(named, colours=colours, class_names=class_names),
        f"{g}-per-class-drop",
        "Per-class accuracy drop",
        "Clean accuracy minus mean accuracy over the sweep, per class, in percentage points.",
    )
    for entry in group.entries:
        data = data_of[entry.label]
        m = _slug(entry.label, model_index[entry.label])
        if data is None or entry.result.predictions is None:
            writer.progress()
            continue
        writer.add(
            figs,
            F.gallery(entry.result, data, entry.label, examples=examples, class_names=class_names),
            f"{g}-gallery-{m}",
            f"Examples under the sweep: {entry.label}",
            "Each row is one test image (true class at the left), each column a sweep point; "
            "cell titles are the model's predictions, failures framed in red.",
        )
    return figs


def _figure_count(groups: Sequence[Group]) -> int:
    # Per group: the curves, and per model a heatmap, a confusion figure and a gallery, a
    # difference map for each model after the first, and the per-class drop.
    return sum(len(_AXES) + 4 * len(g.entries) for g in groups)


def build_report(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    data_root: str | os.PathLike[str] | None = None,
    examples: int = 6,
    title: str = "Geometric robustness report",
    force: bool = False,
    progress: bool = True,
    extra_data: Sequence[Any] = (),
    baseline: str | None = None,
) -> ReportFiles:
    """Write a report comparing the given results side by side.

    Args:
        paths: ``geomrobust.eval/1``, ``geomrobust.attack/1`` and ``geomrobust.pairs/1``
            result files.
        out: The report folder (created; an earlier report there needs ``force``).
        data_root: Folder of the datasets, for the example gallery (the embedded
            ``digits`` needs none).
        examples: Images per gallery.
        title: The report's title.
        force: Replace an earlier report in ``out``.
        progress: Show a progress bar over the figures.
        extra_data: Datasets already in memory (``ImageDataset``), used for the galleries
            when their fingerprint is that of an evaluated split (a subset, say).
        baseline: The label of a model (as the report shows it) whose flip probabilities
            normalise everyone's: the flip table then shows the flip rate per sequence and
            its mean, mFR; without it, raw flip probabilities and their mean.

    Raises:
        ReportError: unreadable or incompatible inputs, an unknown ``baseline`` (the message
            lists the labels), or an earlier report in ``out``.
    """
    from tqdm import tqdm

    from geomrobust import __version__
    from geomrobust.reports._figures import model_colours

    if not 1 <= examples <= 32:
        raise ReportError(f"examples must be in 1..32; got {examples}")
    out = Path(out)
    _check_out(out, force)
    inputs = read_inputs(paths)
    evals, pair_entries, notes = inputs.evals, inputs.pairs, list(inputs.notes)
    groups = group_results(evals)
    attack_groups = group_attacks(inputs.attacks)
    flips = flip_table(groups, baseline=baseline)
    entries = (*evals, *inputs.attacks, *pair_entries)
    labels = list(dict.fromkeys(e.label for e in entries))
    model_index = {label: i for i, label in enumerate(labels, start=1)}
    colours = model_colours(labels)
    data_cache = _DataCache(Path(data_root) if data_root is not None else None, extra_data)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fig_dir = staging / "figures"
        fig_dir.mkdir()
        total = _figure_count(groups) + len(attack_groups)
        total += 1 + len(pair_entries) if pair_entries else 0
        bar = tqdm(total=total, desc="figures", unit="fig", disable=not progress, leave=False)
        with bar:
            writer = _FigureWriter(fig_dir, bar.update)
            sections = []
            flops_of: dict[tuple[str, str], int | None] = {}
            for group in groups:
                figs = _group_figures(group, writer, colours, data_cache, examples, model_index)
                for e in group.entries:  # a model's checkpoint is read once per image shape
                    key = (e.label, e.result.data.dataset)
                    if key not in flops_of:
                        flops_of[key] = _flops(e, data_cache.get(e))
                flops = {e.label: flops_of[(e.label, e.result.data.dataset)] for e in group.entries}
                sections.append(
                    GroupSection(group, model_table(group, flops), figs, seed_table(group))
                )
            attacks = [_attack_section(g, writer, colours) for g in attack_groups]
            pairs = None
            if pair_entries:
                pairs = _pair_section(pair_entries, writer, colours, model_index)
        doc = ReportDocument(
            title=title,
            inputs=[(e.label, str(e.path), e.result.schema) for e in entries],
            groups=sections,
            pairs=pairs,
            attacks=attacks,
            flips=flips,
            notes=notes + data_cache.notes,
            versions={
                "geomrobust": __version__,
                "torch": _torch_version(),
                "python": platform.python_version(),
            },
        )
        hex_colours = {k: _hex(v) for k, v in colours.items()}
        (staging / "index.html").write_text(render_html(doc, hex_colours), encoding="utf-8")
        (staging / "report.md").write_text(render_markdown(doc), encoding="utf-8")
        (staging / "summary.csv").write_text(summary_csv(summary_rows(groups)), encoding="utf-8")
        out.mkdir(exist_ok=True)
        for name in REPORT_FILES:  # replace the earlier report's files, and only those
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            os.replace(staging / name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    figures = tuple(out / "figures" / p.name for p in writer.written)
    return ReportFiles(
        folder=out,
        html=out / "index.html",
        markdown=out / "report.md",
        csv=out / "summary.csv",
        figures=figures,
        notes=tuple(doc.notes),
    )


def _attack_section(group: AttackGroup, writer: _FigureWriter, colours) -> AttackSection:
    from geomrobust.reports import _figures as F

    figs: list[FigureRecord] = []
    writer.add(
        figs,
        F.attack_accuracy([(e.label, e.result) for e in group.entries], colours=colours),
        f"{group.slug}-accuracy",
        "Accuracy under the attack",
        "Accuracy (%) of each model on the clean images, under one random transform, the "
        "worst of k and the whole grid, with 95 % Wilson intervals as error bars.",
    )
    return AttackSection(group, attack_table(group), figs)


def _pair_section(entries, writer: _FigureWriter, colours, model_index) -> PairSection:
    from geomrobust.reports import _figures as F

    figs: list[FigureRecord] = []
    for e in entries:
        writer.add(
            figs,
            F.pair_confusion(e.result, e.label),
            f"pairs-confusion-{_slug(e.label, model_index[e.label])}",
            f"Pair confusion matrix of {e.label}",
            "Rows are the transform classes applied, columns the predicted ones.",
        )
    writer.add(
        figs,
        F.pair_recall([(e.label, e.result) for e in entries], colours=colours),
        "pairs-recall",
        "Per-class recall of the pair classifiers",
        "Recall of each transform class with its 95 % Wilson interval.",
    )
    class_names = entries[0].result.class_names
    return PairSection(pair_table(entries), tuple(class_names), figs)


def _torch_version() -> str:
    import torch

    return torch.__version__
