"""Figures of the report: they draw exactly the numbers of the results they are given."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pytest
import seaborn as sns
import torch
from matplotlib.colors import to_hex
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from torch import nn

from geomrobust.reports._figures import (
    WRONG,
    accuracy_curve,
    confusion_matrices,
    gallery,
    heatmap_difference,
    model_colours,
    pair_confusion,
    pair_recall,
    per_class_drop,
    save_figure,
    scale_rotation_heatmap,
)
from geomrobust.robustness import EvalOptions, evaluate
from geomrobust.robustness._metrics import wilson_interval
from geomrobust.robustness._pairs_eval import PairResult
from geomrobust.robustness._results import (
    DataRecord,
    EvalResult,
    ModelRecord,
    Predictions,
    TransformRecord,
    summarise,
)
from geomrobust.transforms import AffineParams, Sweep, make_sweep, warp
from geomrobust.transforms.datasets import DataFingerprint, ImageDataset, array_sha256, load_dataset

K = 10


# --------------------------------------------------------------------------- builders


def synthetic(
    points,
    correct_rate,
    *,
    n: int = 40,
    seed: int = 0,
    labels: np.ndarray | None = None,
    fingerprint: dict | None = None,
    transform: TransformRecord | None = None,
) -> EvalResult:
    """A result whose image ``i`` is right under point ``p`` with probability ``rate[p]``."""
    rng = np.random.default_rng(seed)
    points = tuple(points)
    if labels is None:
        labels = np.arange(n) % K
    n = labels.shape[0]
    rates = np.broadcast_to(np.asarray(correct_rate, dtype=float), (len(points),))
    right = rng.random((len(points), n)) < rates[:, None]
    wrong = (labels + 1 + rng.integers(0, K - 1, size=(len(points), n))) % K
    pred = np.where(right, labels[None, :], wrong).astype(np.int64)
    clean = np.where(rng.random(n) < 0.9, labels, (labels + 1) % K).astype(np.int64)
    predictions = Predictions(labels.astype(np.int64), clean, pred)
    sweep = Sweep("custom", points, ("scale", "angle_deg", "shift_px"))
    clean_r, pts, summary = summarise(sweep, predictions, num_classes=K)
    return EvalResult(
        model=ModelRecord("tiny", 1, num_classes=K),
        data=DataRecord("digits", "test", n, fingerprint or {"images_sha256": "x"}),
        sweep=sweep,
        transform=transform or TransformRecord("bilinear", "zeros"),
        clean=clean_r,
        points=pts,
        summary=summary,
        predictions=predictions,
    )


def grid_points(scales, angles, shifts=((0.0, 0.0),)):
    return tuple(make_sweep(scales=scales, angles=angles, shifts=shifts).points)


class TinyNet(nn.Module):
    """A random conv + linear classifier whose predictions vary from image to image."""

    in_channels = 1

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(1, 4, 5, stride=2)
        self.fc = nn.Linear(4 * 12 * 12, K)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).relu().flatten(1))


@pytest.fixture(scope="module")
def small() -> ImageDataset:
    """The first 12 digits with a fingerprint of their own."""
    data = load_dataset("digits", split="test")
    images, labels = data.images[:12].contiguous(), data.labels[:12].clone()
    fp = DataFingerprint(
        dataset=data.name,
        split=data.split,
        n_images=12,
        images_sha256=array_sha256((images.numpy() * 255).round().astype(np.uint8)),
        labels_sha256=array_sha256(labels.numpy()),
    )
    return ImageDataset(data.name, data.split, images, labels, data.classes, fp)


def plotted(fig: Figure, label: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(x, y)`` of the lines labelled ``label``, panel by panel."""
    return [
        (np.asarray(line.get_xdata()), np.asarray(line.get_ydata()))
        for ax in fig.axes
        for line in ax.get_lines()
        if line.get_label() == label
    ]


def mesh(ax) -> np.ndarray:
    return np.ma.filled(ax.collections[0].get_array().astype(float), np.nan)


# --------------------------------------------------------------------------- colours


def test_model_colours_stable_distinct_and_ordered():
    labels = ["a", "b", "c"]
    colours = model_colours(labels)
    assert list(colours) == labels
    assert colours == model_colours(labels)
    assert colours["a"] == pytest.approx(sns.color_palette("colorblind")[0])
    many = model_colours([f"m{i}" for i in range(12)])
    assert len({to_hex(c) for c in many.values()}) == 12
    assert many["m0"] == pytest.approx(sns.color_palette("husl", 12)[0])
    with pytest.raises(ValueError, match="unique"):
        model_colours(["a", "a"])


# --------------------------------------------------------------------------- curves


def test_accuracy_curve_picks_exactly_the_points_on_each_axis():
    points = (
        *grid_points((0.8, 1.0, 1.2), (-30.0, 0.0, 30.0)),
        AffineParams(1.0, 0.0, (2.0, 0.0)),
        AffineParams(1.0, 0.0, (0.0, -2.0)),
        AffineParams(1.0, 0.0, (2.0, 2.0)),  # on neither shift panel
        AffineParams(1.0, 0.0, (-2.0, 0.0)),
    )
    result = synthetic(points, np.linspace(0.2, 0.9, len(points)))
    acc = {p.point: p.accuracy * 100 for p in result.points}

    def expect(pts):
        pts = sorted(pts, key=lambda p: p[0])
        return np.array([x for x, _ in pts]), np.array([acc[p] for _, p in pts])

    def check(axis, *panels):
        fig = accuracy_curve([("m", result)], axis)
        lines = plotted(fig, "m")
        assert len(lines) == len(panels)
        for (x, y), pts in zip(lines, panels, strict=True):
            ex, ey = expect(pts)
            np.testing.assert_allclose(x, ex)
            np.testing.assert_allclose(y, ey)

    def p(s=1.0, a=0.0, t=(0.0, 0.0)):
        return AffineParams(s, a, t)

    check("scale", [(s, p(s=s)) for s in (0.8, 1.0, 1.2)])
    check("angle", [(a, p(a=a)) for a in (-30.0, 0.0, 30.0)])
    check(
        "shift",
        [(x, p(t=(x, 0.0))) for x in (-2.0, 0.0, 2.0)],
        [(y, p(t=(0.0, y))) for y in (-2.0, 0.0)],
    )


def test_accuracy_curve_band_and_clean_marker():
    result = synthetic(grid_points((1.0,), (-20.0, 0.0, 20.0)), 0.6)
    fig = accuracy_curve([("m", result)], "angle")
    (ax,) = fig.axes
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    lo, hi = (np.array([p.ci95[i] for p in result.points]) * 100 for i in (0, 1))
    assert band.min() == pytest.approx(lo.min())
    assert band.max() == pytest.approx(hi.max())
    stars = [line for line in ax.get_lines() if line.get_gid() == "clean"]
    assert stars[0].get_ydata()[0] == pytest.approx(result.clean.accuracy * 100)
    assert fig.legends, "the legend is drawn outside the axes"


def test_accuracy_curve_none_and_errors():
    rotation = synthetic(grid_points((1.0,), (-15.0, 0.0, 15.0)), 0.5)
    assert accuracy_curve([("m", rotation)], "scale") is None
    assert accuracy_curve([("m", rotation)], "shift") is None
    with pytest.raises(ValueError, match="axis must be one of"):
        accuracy_curve([("m", rotation)], "rotation")
    with pytest.raises(ValueError, match="duplicate labels"):
        accuracy_curve([("m", rotation), ("m", rotation)], "angle")
    with pytest.raises(ValueError, match="colours has no entry"):
        accuracy_curve([("m", rotation)], "angle", colours={"x": (0, 0, 0)})


# --------------------------------------------------------------------------- heatmaps


def test_heatmap_cells_equal_point_accuracies():
    scales, angles = (0.8, 1.0, 1.25), (-45.0, 0.0, 45.0, 90.0)
    points = (*grid_points(scales, angles), AffineParams(1.0, 0.0, (3.0, 0.0)))
    result = synthetic(points, np.linspace(0.1, 0.95, len(points)))
    fig = scale_rotation_heatmap(result, "m")
    ax = fig.axes[0]
    expected = np.array(
        [
            [result.points[points.index(AffineParams(s, a))].accuracy * 100 for s in scales]
            for a in sorted(angles, reverse=True)
        ]
    )
    np.testing.assert_allclose(mesh(ax).reshape(expected.shape), expected)
    assert ax.collections[0].get_clim() == (0, 100)
    assert [p for p in ax.patches if p.get_gid() == "identity"]


def test_heatmap_none_without_a_grid():
    assert scale_rotation_heatmap(synthetic(grid_points((1.0,), (0.0, 30.0)), 0.5), "m") is None
    assert scale_rotation_heatmap(synthetic(grid_points((0.9, 1.1), (0.0,)), 0.5), "m") is None


def test_difference_heatmap_values_and_significance():
    scales, angles = (0.9, 1.0, 1.1), (-30.0, 0.0, 30.0)
    points = grid_points(scales, angles)
    n, fp = 120, {"images_sha256": "same"}
    a = synthetic(points, 0.5, n=n, seed=1, fingerprint=fp)
    rates = np.full(len(points), 0.5)
    big = points.index(AffineParams(1.1, 30.0))
    rates[big] = 1.0
    b = synthetic(points, rates, n=n, seed=2, fingerprint=fp)
    fig = heatmap_difference(("A", a), ("B", b))
    ax = fig.axes[0]
    expected = np.array(
        [
            [
                (b.points[points.index(AffineParams(s, t))].accuracy - a.points[i].accuracy) * 100
                for s in scales
                for i in [points.index(AffineParams(s, t))]
            ]
            for t in sorted(angles, reverse=True)
        ]
    )
    np.testing.assert_allclose(mesh(ax).reshape(expected.shape), expected)
    lo, hi = ax.collections[0].get_clim()
    assert lo == -hi
    assert hi >= np.abs(expected).max()
    assert "B − A" in fig._suptitle.get_text()
    starred = [t.get_text() for t in ax.texts if t.get_text().endswith("*")]
    # the big improvement (50 % -> 100 % of 120 images) survives Holm over 9 cells
    assert f"{expected[0, 2]:+.1f}*" in starred
    # other images, or no predictions: nothing is tested
    other = synthetic(points, rates, n=n, seed=2, fingerprint={"images_sha256": "other"})
    fig = heatmap_difference(("A", a), ("B", other))
    assert not [t for t in fig.axes[0].texts if t.get_text().endswith("*")]
    assert "not tested" in fig._suptitle.get_text()


def test_difference_heatmap_none_without_a_common_grid():
    a = synthetic(grid_points((0.9, 1.0), (0.0, 30.0)), 0.5)
    b = synthetic(grid_points((1.1, 1.2), (0.0, 30.0)), 0.5)
    assert heatmap_difference(("A", a), ("B", b)) is None


# --------------------------------------------------------------------------- confusion, bars


def test_confusion_panels_use_clean_and_worst_point():
    points = grid_points((1.0,), (-90.0, -30.0, 0.0, 30.0))
    result = synthetic(points, (0.8, 0.1, 0.9, 0.6), n=80)
    worst = result.points[1]
    assert worst.point == result.summary.worst_point
    fig = confusion_matrices(result, "m")
    left, right = fig.axes[:2]

    def share(confusion):
        c = np.asarray(confusion, dtype=float)
        return c / c.sum(axis=1, keepdims=True)

    np.testing.assert_allclose(mesh(left).reshape(K, K), share(result.clean.confusion))
    np.testing.assert_allclose(mesh(right).reshape(K, K), share(worst.confusion))
    assert right.get_title() == f"Worst: −30°: {100 * worst.accuracy:.1f} %"
    assert left.get_title().startswith("Clean")
    counts = sorted(int(t.get_text()) for t in right.texts if t.get_text())
    assert counts == sorted(v for row in worst.confusion for v in row if v)


def test_per_class_drop_bars():
    points = grid_points((1.0,), (-30.0, 30.0))
    a = synthetic(points, 0.3, n=50, seed=3)
    b = synthetic(points, 0.7, n=50, seed=4)
    fig = per_class_drop([("a", a), ("b", b)])
    ax = fig.axes[0]
    for (label, r), bars in zip([("a", a), ("b", b)], ax.containers, strict=True):
        assert bars.get_label() == label
        expected = [
            (r.clean.per_class_accuracy[c] - np.mean([p.per_class_accuracy[c] for p in r.points]))
            * 100
            for c in range(K)
        ]
        np.testing.assert_allclose([bar.get_height() for bar in bars], expected)
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(i) for i in range(K)]


def pair_result(recall_seed: int, names=("none", "displacement", "rotation")) -> PairResult:
    rng = np.random.default_rng(recall_seed)
    k = len(names)
    confusion = rng.integers(0, 20, size=(k, k)) + np.diag(rng.integers(20, 60, size=k))
    totals = confusion.sum(axis=1)
    return PairResult(
        model=ModelRecord("pair-net", 1, num_classes=k),
        data=DataRecord("digits", "test", 100, {}),
        num_pairs=int(confusion.sum()),
        seed=0,
        pair_config={},
        class_names=names,
        n=int(confusion.sum()),
        correct=int(np.trace(confusion)),
        accuracy=float(np.trace(confusion) / confusion.sum()),
        ci95=(0.5, 0.7),
        per_class_recall=tuple(float(confusion[i, i] / totals[i]) for i in range(k)),
        per_class_ci95=tuple(
            wilson_interval(int(confusion[i, i]), int(totals[i])) for i in range(k)
        ),
        confusion=tuple(tuple(int(v) for v in row) for row in confusion),
    )


def test_pair_figures():
    p, q = pair_result(0), pair_result(1)
    fig = pair_confusion(p, "pairs")
    shares = np.asarray(p.confusion) / np.asarray(p.confusion).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(mesh(fig.axes[0]).reshape(3, 3), shares)
    fig = pair_recall([("p", p), ("q", q)])
    ax = fig.axes[0]
    bar_sets = [c for c in ax.containers if isinstance(c, BarContainer)]
    for r, bars in zip((p, q), bar_sets, strict=True):
        np.testing.assert_allclose(
            [bar.get_width() for bar in bars], np.array(r.per_class_recall) * 100
        )
    assert [t.get_text() for t in ax.get_yticklabels()] == ["none", "displacement", "rotation"]
    with pytest.raises(ValueError, match="different pair classes"):
        pair_recall([("p", p), ("r", pair_result(2, names=("a", "b", "c")))])


# --------------------------------------------------------------------------- gallery


def cells(fig: Figure) -> list:
    return [ax for ax in fig.axes if (ax.get_gid() or "").startswith("gallery-")]


def test_gallery_frames_exactly_the_wrong_cells(small):
    points = grid_points((1.0,), (-60.0, -20.0, 0.0, 20.0, 60.0))
    result = synthetic(points, 0.5, labels=small.labels.numpy())
    n = len(small)
    fig = gallery(result, small, "m", examples=n, max_points=len(points))
    shown = cells(fig)
    assert len(shown) == n * len(points)
    red = [ax for ax in shown if to_hex(ax.spines["left"].get_edgecolor()) == WRONG]
    wrong = int((result.predictions.points != result.predictions.labels).sum())
    assert len(red) == wrong
    assert all(to_hex(ax.title.get_color()) == WRONG for ax in red)
    assert {ax.get_gid() for ax in red} == {"gallery-wrong"}


def test_gallery_columns_and_example_choice(small):
    points = grid_points((1.0,), tuple(float(a) for a in range(-150, 151, 30)))
    labels = small.labels.numpy()
    result = synthetic(points, np.linspace(0.2, 0.9, len(points)), labels=labels, seed=5)
    fig = gallery(result, small, "m", examples=4, max_points=5)
    heads = [ax for ax in fig.axes if not ax.get_gid()]
    texts = [ax.texts[0].get_text() for ax in heads]
    assert len(texts) == 5
    assert any("worst" in t for t in texts)
    assert any("identity" in t for t in texts)
    # the rows break somewhere shown: each is right untransformed and wrong in some cell
    grid = np.array([ax.get_gid() == "gallery-wrong" for ax in cells(fig)]).reshape(4, 5)
    assert grid.any(axis=1).all()


def test_gallery_shows_what_the_model_saw(small):
    """Cells are the engine's warps: the model classifies each picture as its title says."""
    model = TinyNet().eval()
    sweep = make_sweep(angles=(-40.0, 0.0, 25.0), scales=(0.8, 1.0), name="custom")
    options = EvalOptions(interpolation="nearest", fill=(0.3,))
    result = evaluate(model, small, sweep, options=options)
    fig = gallery(result, small, "tiny", examples=5, max_points=6)
    pictures = torch.tensor(
        np.stack([np.asarray(ax.images[0].get_array()) for ax in cells(fig)]), dtype=torch.float32
    )[:, None]
    with torch.no_grad():
        guesses = model(pictures).argmax(dim=1).tolist()
    assert guesses == [int(ax.get_title()) for ax in cells(fig)]
    # and each picture is transforms.warp of a dataset image with the recorded options
    first = pictures[0:1]
    candidates = warp(
        small.images,
        result.points[0].point,
        interpolation="nearest",
        padding="constant",
        fill=[0.3],
    )
    assert any(torch.equal(first[0], c) for c in candidates)


def test_gallery_errors(small):
    points = grid_points((1.0,), (0.0, 30.0))
    result = synthetic(points, 0.5, labels=small.labels.numpy())
    bare = EvalResult(**{**result.__dict__, "predictions": None})
    with pytest.raises(ValueError, match="needs the per-image predictions"):
        gallery(bare, small, "m")
    other = synthetic(points, 0.5, n=10)
    with pytest.raises(ValueError, match="not the evaluated split"):
        gallery(other, small, "m")
    with pytest.raises(ValueError, match="examples must be an int >= 1"):
        gallery(result, small, "m", examples=0)


# --------------------------------------------------------------------------- style, saving


def test_figures_leave_global_state_alone():
    before = dict(mpl.rcParams)
    result = synthetic(grid_points((0.9, 1.0), (0.0, 30.0)), 0.5)
    fig = scale_rotation_heatmap(result, "m")
    assert isinstance(fig, Figure)
    assert dict(mpl.rcParams) == before
    assert plt.get_fignums() == []


def test_save_figure_is_reproducible(tmp_path):
    result = synthetic(grid_points((0.9, 1.0), (0.0, 30.0)), 0.5)
    saved = []
    for folder in ("one", "two"):
        fig = accuracy_curve([("m", result)], "scale")
        png, svg = save_figure(fig, tmp_path / folder, "curve")
        assert (png.name, svg.name) == ("curve.png", "curve.svg")
        saved.append((png.read_bytes(), svg.read_bytes()))
    assert saved[0][1] == saved[1][1]
    assert saved[0][0] == saved[1][0]
    assert b"Matplotlib version" not in saved[0][0]
    assert b"<dc:date>" not in saved[0][1]
    with pytest.raises(ValueError, match="stem"):
        save_figure(Figure(), tmp_path, "a/b")
