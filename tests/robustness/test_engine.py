"""The engine: known answers from a model with hand-set predictions, batch-size invariance,
resume after an interruption, shards that merge exactly, and input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TinyNet
from torch import nn

from geomrobust.robustness import (
    EvalInputError,
    EvalOptions,
    ResumeError,
    evaluate,
    merge_shards,
    plan_shards,
    run_shard,
    work_rows,
)
from geomrobust.transforms import AffineParams, make_sweep
from geomrobust.transforms.datasets import DataFingerprint, ImageDataset, array_sha256

N, K, LEVELS = 40, 4, 64
SCALES = (0.5, 0.75, 1.0)


def _constant_images() -> ImageDataset:
    """Image ``i`` is the constant ``(i + 1) / 64``: the centre pixel encodes the index."""
    values = (torch.arange(N, dtype=torch.float32) + 1) / LEVELS
    images = values.view(N, 1, 1, 1).expand(N, 1, 28, 28).contiguous()
    labels = torch.from_numpy(np.random.default_rng(3).integers(0, K, N))
    fp = DataFingerprint("const", "test", N, array_sha256(np.arange(N)), array_sha256(labels))
    return ImageDataset("const", "test", images, labels, ("a", "b", "c", "d"), fp)


class HandSet(nn.Module):
    """Returns the logits of ``table[point row, image index]``.

    The image index is read from the centre pixel, the scale from the share of non-zero
    pixels (zero padding uncovers the border as the image shrinks).
    """

    in_channels = 1

    def __init__(self, table: np.ndarray) -> None:
        super().__init__()
        self.table = torch.from_numpy(table)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        idx = (x[:, 0, 14, 14] * LEVELS).round().long() - 1
        cover = (x[:, 0] > 0).float().mean(dim=(1, 2))
        row = torch.where(cover > 0.9, 2, torch.where(cover > 0.45, 1, 0))  # 1.0, 0.75, 0.5
        return nn.functional.one_hot(self.table[row, idx], K).float()


@pytest.fixture
def handset():
    table = np.random.default_rng(5).integers(0, K, size=(3, N))
    return HandSet(table).eval(), table


def test_known_answer_metrics(handset):
    model, table = handset
    data = _constant_images()
    labels = data.labels.numpy()
    sweep = make_sweep(scales=SCALES)
    result = evaluate(model, data, sweep, options=EvalOptions(batch_size=7))
    # Naive references, image by image.
    for p, point in enumerate(result.points):
        pred = table[p]
        correct = sum(int(pred[i] == labels[i]) for i in range(N))
        assert point.point == AffineParams(SCALES[p])
        assert (point.n, point.correct, point.accuracy) == (N, correct, correct / N)
        conf = [
            [sum(1 for i in range(N) if labels[i] == t and pred[i] == q) for q in range(K)]
            for t in range(K)
        ]
        assert [list(r) for r in point.confusion] == conf
        flips = sum(int(pred[i] != table[2, i]) for i in range(N)) / N
        assert point.flip_rate == flips
        for c in range(K):
            total = sum(conf[c])
            assert point.per_class_accuracy[c] == (conf[c][c] / total if total else None)
        lo, hi = point.ci95
        assert lo <= point.accuracy <= hi
    accs = [sum(int(table[p, i] == labels[i]) for i in range(N)) / N for p in range(3)]
    s = result.summary
    assert s.clean_accuracy == accs[2]
    assert result.clean.accuracy == accs[2]
    assert s.mean_accuracy == pytest.approx(sum(accs) / 3, abs=1e-15)
    assert s.worst_accuracy == min(accs)
    assert s.worst_point == AffineParams(SCALES[accs.index(min(accs))])
    all_ok = sum(all(table[p, i] == labels[i] for p in range(3)) for i in range(N)) / N
    same = sum(len({int(table[p, i]) for p in range(3)}) == 1 for i in range(N)) / N
    assert s.all_points_accuracy == all_ok
    assert s.consistency == same
    assert s.relative_robustness == pytest.approx(s.mean_accuracy / s.clean_accuracy)
    assert np.array_equal(result.predictions.points, table)
    assert np.array_equal(result.predictions.labels, labels)


def test_clean_is_evaluated_when_the_sweep_lacks_the_identity(handset):
    model, table = handset
    data = _constant_images()
    sweep = make_sweep(scales=(0.5, 0.75))
    rows, clean_row = work_rows(sweep)
    assert (len(rows), clean_row) == (3, 2)
    result = evaluate(model, data, sweep)
    assert len(result.points) == 2
    assert np.array_equal(result.predictions.clean, table[2])
    assert result.summary.clean_accuracy == result.clean.accuracy
    assert result.summary.mean_accuracy == pytest.approx(
        (result.points[0].accuracy + result.points[1].accuracy) / 2
    )


def replace_mac(result):
    from dataclasses import replace

    points = tuple(replace(p, mean_abs_prob_change=None) for p in result.points)
    return replace(result, points=points, clean=replace(result.clean, mean_abs_prob_change=None))


def test_identical_metrics_at_batch_sizes_1_7_256(small, tiny):
    sweep = make_sweep(scales=(0.6, 1.0), angles=(0.0, 30.0))
    opts = {"mean": (0.1,), "std": (0.3,), "fill": "mean"}
    results = [
        evaluate(tiny, small, sweep, options=EvalOptions(batch_size=bs, **opts))
        for bs in (1, 7, 256)
    ]
    assert len({r.predictions.points.tobytes() for r in results}) == 1
    # every metric but the MAC (float sums of softmax probabilities, equal to rounding)
    exact = [replace_mac(r) for r in results]
    assert exact[0] == exact[1] == exact[2]  # run info is not compared
    for a, b in zip(results[0].points, results[2].points, strict=True):
        assert a.mean_abs_prob_change == pytest.approx(b.mean_abs_prob_change, abs=1e-6)
    assert len({tuple(p.accuracy for p in r.points) for r in results}) == 1
    assert results[0].summary.consistency < 1  # the predictions vary with the point
    assert len(np.unique(results[0].predictions.points)) > 2  # and with the image


def test_resume_after_interruption_matches_uninterrupted_run(small, tmp_path):
    sweep = make_sweep(scales=(0.5, 0.8, 1.0, 1.3))
    full = evaluate(TinyNet().eval(), small, sweep, options=EvalOptions(batch_size=16))

    model = TinyNet().eval()
    seen = []

    def interrupt(n):
        seen.append(n)
        if sum(seen) >= len(sweep) * 16 + 8:  # the first block done, the second started
            raise KeyboardInterrupt

    partial = tmp_path / "r.json.partial"
    with pytest.raises(KeyboardInterrupt):
        evaluate(
            model,
            small,
            sweep,
            partial=partial,
            progress=interrupt,
            options=EvalOptions(batch_size=1),  # blocks of 16 images, all 4 rows each
        )
    assert sorted(p.name for p in partial.glob("*.npy")) == [
        f"point-{i:05d}.0000000-0000016.npy" for i in range(4)
    ]

    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    resumed = evaluate(
        model, small, sweep, partial=partial, resume=True, options=EvalOptions(batch_size=1)
    )
    assert sum(calls) == 4 * (len(small) - 16)  # only the unfinished blocks were computed
    assert resumed.run["shards_resumed"] == 4
    assert replace_mac(resumed) == replace_mac(full)
    assert np.array_equal(resumed.predictions.points, full.predictions.points)


def test_resume_refuses_a_partial_of_another_run(small, tiny, tmp_path):
    partial = tmp_path / "r.json.partial"
    sweep = make_sweep(scales=(0.5, 1.0))
    evaluate(tiny, small, sweep, partial=partial)
    with pytest.raises(
        ResumeError, match=r"cannot resume: .* different sweep; rerun with resume=False"
    ):
        evaluate(tiny, small, make_sweep(scales=(0.6, 1.0)), partial=partial, resume=True)
    with pytest.raises(ResumeError, match=r"different transform"):
        evaluate(
            tiny,
            small,
            sweep,
            partial=partial,
            resume=True,
            options=EvalOptions(interpolation="nearest"),
        )
    with pytest.raises(ResumeError, match=r"different weights_sha256"):
        evaluate(TinyNet(seed=1).eval(), small, sweep, partial=partial, resume=True)


def test_shards_merge_exactly(small, tiny):
    sweep = make_sweep(scales=(0.7, 1.2))
    options = EvalOptions(batch_size=8)
    full = evaluate(tiny, small, sweep, options=options)
    rows, _ = work_rows(sweep)
    shards = plan_shards(len(rows), len(small), images_per_shard=25)
    assert len(shards) == 3 * 3
    results = [run_shard(tiny, small, sweep, s, options=options) for s in reversed(shards)]
    merged = merge_shards(results, n_rows=len(rows), n_images=len(small))
    assert np.array_equal(merged[:2], full.predictions.points)
    assert np.array_equal(merged[2], full.predictions.clean)
    for row in range(2):
        parts = [r for r in results if r.shard.row == row]
        assert sum(r.correct for r in parts) == full.points[row].correct
        total = sum(r.confusion for r in parts)
        assert total.tolist() == [list(c) for c in full.points[row].confusion]
    with pytest.raises(ValueError, match=r"do not cover every image of row\(s\) \[2\]"):
        merge_shards(results[1:], n_rows=len(rows), n_images=len(small))


def test_input_errors(small, tiny):
    sweep = make_sweep(scales=(1.0,))
    train = TinyNet()
    with pytest.raises(EvalInputError, match=r"training mode.*call model.eval\(\) first"):
        evaluate(train, small, sweep)
    assert train.training  # not switched by the engine
    with pytest.raises(EvalInputError, match=r"model is on cpu but device='meta' was asked"):
        evaluate(tiny, small, sweep, device="meta")
    rgb = TinyNet().eval()
    rgb.in_channels = 3
    with pytest.raises(EvalInputError, match=r"takes 3 input channel\(s\) but dataset 'digits'"):
        evaluate(rgb, small, sweep)
    with pytest.raises(EvalInputError, match=r"predicts 7 classes but the dataset has 10"):
        evaluate(TinyNet(num_classes=7).eval(), small, sweep)
    with pytest.raises(EvalInputError, match=r"fill='mean' pads with the model's normalisation"):
        EvalOptions(fill="mean")
    with pytest.raises(EvalInputError, match=r"mean and std must be given together"):
        EvalOptions(mean=(0.5,))
    with pytest.raises(EvalInputError, match=r"std must be > 0 per channel; got \[0.0\]"):
        EvalOptions(mean=(0.5,), std=(0.0,))
    with pytest.raises(EvalInputError, match=r"batch_size must be an int >= 1; got 0"):
        EvalOptions(batch_size=0)
    with pytest.raises(EvalInputError, match=r"interpolation must be one of"):
        EvalOptions(interpolation="bicubic")
    with pytest.raises(EvalInputError, match=r"mean has 3 values; the images have 1 channel"):
        evaluate(tiny, small, sweep, options=EvalOptions(mean=(0, 0, 0), std=(1, 1, 1)))
    with pytest.raises(EvalInputError, match=r"unknown sweep 'scales'.*Did you mean 'scale'"):
        evaluate(tiny, small, "scales")


def test_fill_mean_is_recorded_and_normalisation_applied(small, tiny):
    result = evaluate(
        tiny,
        small,
        make_sweep(scales=(0.5, 1.0)),
        options=EvalOptions(mean=(0.25,), std=(0.5,), fill="mean"),
    )
    t = result.transform
    assert (t.padding, t.fill, t.fill_spec) == ("constant", (0.25,), "mean")
    assert result.model.normalisation_source == "user"
    assert result.model.name == "TinyNet"
    # The same images by hand: warp with the mean as fill, normalise, classify.
    from geomrobust.transforms import warp

    x = warp(small.images, AffineParams(0.5), padding="constant", fill=[0.25])
    with torch.inference_mode():
        expected = tiny((x - 0.25) / 0.5).argmax(1).numpy()
    assert np.array_equal(result.predictions.points[0], expected)


def test_images_follow_the_model_device_and_dtype(small, device, dtype):
    sweep = make_sweep(scales=(0.7, 1.0))
    reference = evaluate(TinyNet().eval(), small, sweep)
    model = TinyNet().to(device=device, dtype=dtype).eval()
    result = evaluate(
        model, small, sweep, device=device, options=EvalOptions(mean=(0.0,), std=(1.0,))
    )
    assert result.run["device"] == str(device)
    assert result.run["dtype"] == str(dtype).removeprefix("torch.")
    assert next(model.parameters()).device.type == device.type  # not moved
    assert np.array_equal(result.predictions.points, reference.predictions.points)
