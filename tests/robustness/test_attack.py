"""The spatial attack: worst-of-k, grid and the summary against an independent computation
with the same draws, the same outcomes at any batch size, canvas padding, presets, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from geomrobust.robustness import (
    AttackConfig,
    EvalInputError,
    EvalOptions,
    attack,
    attack_preset,
    load_attack_result,
    write_attack_result,
)
from geomrobust.robustness._attack_config import FIRST_WORST_DRAW, PAIR_DRAW, RANDOM_DRAW
from geomrobust.robustness._metrics import wilson_interval
from geomrobust.transforms.datasets import load_dataset


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", split="test").head(48)


@pytest.fixture(scope="module")
def cnn():
    from geomrobust.models import build_model

    torch.manual_seed(0)
    return build_model("mnist-cnn").eval()


def _config(**kw):
    return AttackConfig(**({"grid": (5, 3, 3), "k": 4, "seed": 7} | kw))


def test_outcomes_do_not_depend_on_the_batch_size(cnn, digits):
    one = attack(cnn, digits, _config(), options=EvalOptions(batch_size=1))
    many = attack(cnn, digits, _config(), options=EvalOptions(batch_size=256))
    for key in one.arrays:
        assert np.array_equal(one.arrays[key], many.arrays[key], equal_nan=True), key
    assert one.summary == many.summary


def test_worst_of_k_is_the_draw_with_the_highest_loss(cnn, digits):
    cfg = _config()
    result = attack(cnn, digits, cfg)
    a = result.arrays
    x, labels = digits.images, digits.labels
    with torch.no_grad():
        losses, preds = [], []
        for j in range(cfg.k):
            from geomrobust.robustness._attack_config import as_batch
            from geomrobust.transforms import warp

            params = as_batch(cfg.draws(np.arange(len(digits)), FIRST_WORST_DRAW + j, 28, 28), x)
            logits = cnn(warp(x, params))
            losses.append(nn.functional.cross_entropy(logits, labels, reduction="none"))
            preds.append(logits.argmax(1))
    losses, preds = torch.stack(losses), torch.stack(preds)
    best = losses.argmax(0)  # first maximum on ties, as the attack
    assert np.array_equal(a["worst_draw"], best.numpy())
    assert np.array_equal(a["pred_worst"], preds[best, torch.arange(len(digits))].numpy())
    worst = np.stack(
        [cfg.draws(np.array([i]), FIRST_WORST_DRAW + int(best[i]), 28, 28)[0] for i in range(48)]
    )
    assert np.allclose(a["worst_params"], worst)


def test_grid_counts_an_image_correct_only_at_every_point(cnn, digits):
    cfg = _config()
    result = attack(cnn, digits, cfg)
    grid = cfg.grid_points(28, 28)
    from geomrobust.transforms import warp

    with torch.no_grad():
        right = torch.stack([cnn(warp(digits.images, p)).argmax(1) == digits.labels for p in grid])
    first = torch.where(right.all(0), -1, (~right).int().argmax(0))
    assert np.array_equal(result.arrays["grid_first_fail"], first.numpy())
    assert result.summary["grid_correct"] == int(right.all(0).sum())
    failed = first.numpy() >= 0
    expected = np.array([(grid[g].angle_deg, *grid[g].shift_px) for g in first.numpy()[failed]])
    assert np.allclose(result.arrays["grid_fail_params"][failed], expected)
    assert np.isnan(result.arrays["grid_fail_params"][~failed]).all()


def test_summary_intervals_and_pair_consistency(cnn, digits):
    result = attack(cnn, digits, _config())
    s, a = result.summary, result.arrays
    for mode, correct in result.correct().items():
        assert s[f"{mode}_correct"] == int(correct.sum())
        assert s[f"{mode}_accuracy_ci95"] == list(wilson_interval(int(correct.sum()), 48))
    assert s["pair_consistency"] == float((a["pred_random"] == a["pred_pair"]).mean())
    assert s["grid"] == [5, 3, 3]
    assert s["box"] == {"max_angle_deg": 30.0, "max_shift_px": [3.0, 3.0]}


def test_draws_are_keyed_by_seed_index_and_draw():
    cfg = _config()
    all_ = cfg.draws(np.arange(10), RANDOM_DRAW, 28, 28)
    some = cfg.draws(np.array([7, 3]), RANDOM_DRAW, 28, 28)
    assert np.array_equal(some, all_[[7, 3]])
    assert not np.array_equal(cfg.draws(np.arange(10), PAIR_DRAW, 28, 28), all_)
    assert np.abs(all_[:, 0]).max() <= 30
    assert np.abs(all_[:, 1:]).max() <= 3


def test_a_zero_filled_canvas_equals_the_plain_warp(cnn, digits):
    plain = attack(cnn, digits, _config())
    padded = attack(cnn, digits, _config(canvas_pad=16))
    assert np.array_equal(plain.arrays["pred_random"], padded.arrays["pred_random"])
    assert np.array_equal(plain.arrays["grid_first_fail"], padded.arrays["grid_first_fail"])


def test_presets():
    assert attack_preset("engstrom-mnist").grid == (31, 5, 5)
    assert attack_preset("engstrom-cifar").canvas_pad == 16
    imagenet = attack_preset("engstrom-imagenet")
    assert imagenet.shift_bounds(224, 224) == (24.0, 24.0)
    assert len(imagenet.grid_points(224, 224)) == 775
    assert attack_preset("engstrom-mnist", k=3).k == 3
    with pytest.raises(EvalInputError, match=r"unknown preset 'engstrom-mnst'.*'engstrom-mnist'"):
        attack_preset("engstrom-mnst")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_angle_deg": 0.0, "max_shift_px": 0.0}, "box is empty"),
        ({"k": 0}, r"k must be an int >= 1; got 0"),
        ({"grid": (31, 0, 5)}, r"grid must be 3 sizes .* each >= 1"),
        ({"max_shift_px": -1.0}, r"max_shift_px must be a finite number >= 0"),
        ({"canvas_pad": -2}, r"canvas_pad must be an int >= 0"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(EvalInputError, match=message):
        AttackConfig(**kwargs)


def test_results_round_trip(cnn, digits, tmp_path):
    result = attack(cnn, digits, _config())
    write_attack_result(result, tmp_path / "a.json")
    back = load_attack_result(tmp_path / "a.json")
    assert back.to_dict() == result.to_dict()
    for key in result.arrays:
        assert np.array_equal(back.arrays[key], result.arrays[key], equal_nan=True)
