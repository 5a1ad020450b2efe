"""Paired comparison of two attack results (exact McNemar per mode) and the flip rate of an
eval comparison, on outcomes small enough to count by hand."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from geomrobust.robustness import (
    AttackResult,
    IncompatibleResultsError,
    Predictions,
    compare_results,
    load_attack_result,
    write_attack_result,
)
from geomrobust.robustness._compare import (
    ATTACK_SETTINGS,
    COMPARE_ATTACK_SCHEMA,
    compare_attack_results,
)
from geomrobust.robustness._results import (
    DataRecord,
    EvalResult,
    ModelRecord,
    TransformRecord,
    summarise,
)
from geomrobust.transforms import make_sweep

MODES = ("clean", "random", "worst_of_k", "grid")
FINGERPRINT = {
    "dataset": "hand",
    "split": "test",
    "n_images": 8,
    "images_sha256": "i" * 64,
    "labels_sha256": "l" * 64,
}
SETTINGS = {
    "preset": "engstrom-mnist",
    "box": {"max_angle_deg": 30.0, "max_shift_px": [3.0, 3.0]},
    "k": 10,
    "grid": (5, 3, 3),  # a tuple here, a list once read back from JSON: the same setting
    "canvas_pad": 0,
    "seed": 0,
}


def _attack(name: str, outcomes: dict[str, list[int]], **attack) -> AttackResult:
    """An attack result whose image ``i`` is right under ``mode`` iff ``outcomes[mode][i]``."""
    right = {m: np.asarray(outcomes[m], dtype=bool) for m in MODES}
    n = right["clean"].shape[0]
    labels = np.arange(n, dtype=np.int64) % 3
    wrong = (labels + 1) % 3
    arrays = {
        "labels": labels,
        "index": np.arange(n, dtype=np.int64),
        "pred_clean": np.where(right["clean"], labels, wrong),
        "pred_random": np.where(right["random"], labels, wrong),
        "pred_pair": labels.copy(),
        "pred_worst": np.where(right["worst_of_k"], labels, wrong),
        "worst_draw": np.zeros(n, dtype=np.int64),
        "grid_first_fail": np.where(right["grid"], -1, 4).astype(np.int64),
    }
    summary: dict = {"n": n}
    for m in MODES:
        summary[f"{m}_accuracy"] = float(right[m].mean())
        summary[f"{m}_accuracy_ci95"] = [0.0, 1.0]
        summary[f"{m}_correct"] = int(right[m].sum())
    return AttackResult(
        model=ModelRecord(name=name, params=1, num_classes=3),
        data=DataRecord("hand", "test", n, dict(FINGERPRINT)),
        attack={**SETTINGS, **attack},
        transform=TransformRecord("bilinear", "zeros"),
        preprocess={},
        summary=summary,
        arrays=arrays,
    )


# Per mode, A and B on the same 8 images; the discordant pairs counted by hand.
A = {
    "clean": [1, 1, 1, 1, 1, 1, 0, 0],
    "random": [1, 1, 1, 1, 1, 1, 1, 1],
    "worst_of_k": [1, 0, 0, 0, 1, 0, 0, 0],
    "grid": [0, 0, 0, 0, 0, 0, 0, 0],
}
B = {
    "clean": [1, 1, 1, 1, 0, 0, 1, 0],  # A only: 4, 5; B only: 6
    "random": [0, 0, 0, 0, 0, 0, 0, 1],  # A only: 0..6 (7); B only: none
    "worst_of_k": [1, 0, 0, 0, 1, 0, 0, 0],  # the same outcomes: no discordant pair
    "grid": [1, 1, 0, 0, 0, 0, 0, 0],  # B only: 0, 1
}
COUNTS = {"clean": (2, 1), "random": (7, 0), "worst_of_k": (0, 0), "grid": (0, 2)}


def test_mcnemar_counts_and_p_values_per_mode():
    cmp = compare_attack_results(_attack("a", A), _attack("b", B))
    assert [m.mode for m in cmp.modes] == list(MODES)
    assert cmp.n == 8
    assert (cmp.model_a, cmp.model_b) == ("a", "b")
    for m in cmp.modes:
        only_a, only_b = COUNTS[m.mode]
        assert (m.only_a, m.only_b) == (only_a, only_b), m.mode
        assert m.accuracy_a == np.mean(A[m.mode])
        assert m.accuracy_b == np.mean(B[m.mode])
        assert m.difference == pytest.approx(m.accuracy_a - m.accuracy_b)
        if only_a + only_b:
            expected = stats.binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue
        else:
            expected = 1.0
        assert m.mcnemar_p == pytest.approx(min(1.0, expected), rel=1e-12)
    # By hand: 7 vs 0 discordant pairs, p = 2 / 2**7; 2 vs 1, p = 1; 0 vs 2, p = 2 / 4.
    assert cmp.mode("random").mcnemar_p == pytest.approx(2 / 2**7)
    assert cmp.mode("clean").mcnemar_p == 1.0
    assert cmp.mode("grid").mcnemar_p == pytest.approx(0.5)
    assert cmp.mode("worst_of_k").mcnemar_p == 1.0
    # A minus B is B minus A the other way round.
    back = compare_attack_results(_attack("b", B), _attack("a", A))
    for m, r in zip(cmp.modes, back.modes, strict=True):
        assert (m.only_a, m.only_b, m.mcnemar_p) == (r.only_b, r.only_a, r.mcnemar_p)
        assert m.difference == -r.difference


def test_json_layout():
    data = compare_attack_results(_attack("a", A), _attack("b", B)).to_dict()
    assert data["schema"] == COMPARE_ATTACK_SCHEMA == "geomrobust.compare-attack/1"
    assert data["attack"] == {
        "box": {"max_angle_deg": 30.0, "max_shift_px": [3.0, 3.0]},
        "k": 10,
        "grid": [5, 3, 3],
        "seed": 0,
        "canvas_pad": 0,
        "preset": "engstrom-mnist",
    }
    assert [m["mode"] for m in data["modes"]] == list(MODES)
    assert data["modes"][1] | {"mcnemar_p": None} == {
        "mode": "random",
        "accuracy_a": 1.0,
        "accuracy_b": 0.125,
        "difference": 0.875,
        "only_a": 7,
        "only_b": 0,
        "mcnemar_p": None,
    }
    assert json.loads(json.dumps(data)) == data  # plain JSON values only


def test_results_read_back_from_files_compare(tmp_path):
    a = load_attack_result(write_attack_result(_attack("a", A), tmp_path / "a.json"))
    b = _attack("b", B)  # the grid as a tuple against the file's list
    assert [m.only_a for m in compare_attack_results(a, b).modes] == [2, 7, 0, 0]


@pytest.mark.parametrize(
    ("setting", "value", "shown"),
    [
        ("k", 5, "k: 10 vs 5"),
        ("seed", 1, "seed: 0 vs 1"),
        ("grid", (31, 5, 5), "grid: [5, 3, 3] vs [31, 5, 5]"),
        ("canvas_pad", 16, "canvas_pad: 0 vs 16"),
        (
            "box",
            {"max_angle_deg": 30.0, "max_shift_px": [24.0, 24.0]},
            "box: {'max_angle_deg': 30.0, 'max_shift_px': [3.0, 3.0]} vs",
        ),
    ],
)
def test_refuses_other_attack_settings(setting, value, shown):
    assert setting in ATTACK_SETTINGS
    with pytest.raises(IncompatibleResultsError, match=r"different attack settings \(") as info:
        compare_attack_results(_attack("a", A), _attack("b", B, **{setting: value}))
    assert shown in str(info.value)
    assert "Attack both models on the same data with the same settings" in str(info.value)


def test_the_preset_name_alone_does_not_matter():
    cmp = compare_attack_results(_attack("a", A), _attack("b", B, preset=None))
    assert cmp.attack["preset"] == "engstrom-mnist"


def test_refuses_other_data_convention_and_missing_outcomes():
    a, b = _attack("a", A), _attack("b", B)
    other = replace(b, data=replace(b.data, fingerprint={**FINGERPRINT, "images_sha256": "x"}))
    with pytest.raises(IncompatibleResultsError, match=r"different data \(images_sha256: 'i+' vs"):
        compare_attack_results(a, other)
    nearest = replace(b, transform=TransformRecord("nearest", "zeros"))
    with pytest.raises(IncompatibleResultsError, match=r"different transform conventions"):
        compare_attack_results(a, nearest)
    with pytest.raises(IncompatibleResultsError, match=r"result B has no per-image outcomes"):
        compare_attack_results(a, replace(b, arrays=None))
    relabelled = replace(b, arrays={**b.arrays, "labels": (b.arrays["labels"] + 1) % 3})
    with pytest.raises(IncompatibleResultsError, match=r"different labels in the predictions"):
        compare_attack_results(a, relabelled)
    # Every problem is named at once.
    with pytest.raises(IncompatibleResultsError, match=r"different data .*; different attack"):
        compare_attack_results(a, replace(other, attack={**SETTINGS, "k": 3}))


def _eval(points: list[list[int]], sweep) -> EvalResult:
    """An eval result of 2 images (labels 0, 0) with the given per-point predictions."""
    pred = Predictions(
        labels=np.zeros(2, dtype=np.int64),
        clean=np.zeros(2, dtype=np.int64),
        points=np.asarray(points, dtype=np.int64),
    )
    clean, pts, summary = summarise(sweep, pred, num_classes=2)
    return EvalResult(
        model=ModelRecord(name="e", params=1, num_classes=2),
        data=DataRecord("hand", "test", 2, dict(FINGERPRINT, n_images=2)),
        sweep=sweep,
        transform=TransformRecord("bilinear", "zeros"),
        clean=clean,
        points=pts,
        summary=summary,
        predictions=pred,
    )


def test_refuses_an_attack_and_an_eval_result():
    e = _eval([[0, 0], [1, 0]], make_sweep(angles=(0.0, 10.0)))
    a = _attack("a", A)
    with pytest.raises(IncompatibleResultsError, match=r"A is an attack result and B is an eval"):
        compare_attack_results(a, e)
    with pytest.raises(IncompatibleResultsError, match=r"A is an eval result and B is an attack"):
        compare_results(e, a)


def test_eval_compare_gives_the_flip_rate_of_two_sequences():
    sweep = make_sweep(angles=(-10.0, 0.0, 10.0))
    # A changes image 0 at step 1 and image 1 at step 2: FP = (1/2 + 1/2) / 2 = 0.5.
    a = _eval([[0, 0], [1, 0], [1, 1]], sweep)
    # B changes image 0 at step 2 only: FP = (0 + 1/2) / 2 = 0.25.
    b = _eval([[0, 0], [0, 0], [1, 0]], sweep)
    assert (a.summary.flip_probability, b.summary.flip_probability) == (0.5, 0.25)
    cmp = compare_results(a, b, resamples=50)
    assert (cmp.flip_probability_a, cmp.flip_probability_b, cmp.flip_rate) == (0.5, 0.25, 2.0)
    data = cmp.to_dict()
    assert (data["flip_probability_a"], data["flip_probability_b"]) == (0.5, 0.25)
    assert data["flip_rate"] == 2.0
    assert compare_results(b, a, resamples=50).flip_rate == 0.5
    # B never flips: FR is undefined.
    steady = _eval([[0, 0], [0, 0], [0, 0]], sweep)
    cmp = compare_results(a, steady, resamples=50)
    assert (cmp.flip_probability_b, cmp.flip_rate) == (0.0, None)


def test_eval_compare_of_a_grid_has_no_flip_rate():
    grid = make_sweep(scales=(0.8, 1.2), angles=(-10.0, 10.0))
    a = _eval([[0, 0], [1, 0], [1, 1], [0, 1]], grid)
    assert a.summary.flip_probability is None
    data = compare_results(a, a, resamples=50).to_dict()
    assert (data["flip_probability_a"], data["flip_probability_b"], data["flip_rate"]) == (
        None,
        None,
        None,
    )
