"""Result records: summary edge cases, JSON round trips, atomic files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geomrobust.robustness import (
    EvalOptions,
    EvalResult,
    Predictions,
    evaluate,
    load_result,
    predictions_path,
    summarise,
    write_result,
)
from geomrobust.transforms import AffineParams, make_sweep


def test_summary_edge_cases():
    labels = np.array([0, 1, 1, 0])
    pred = Predictions(
        labels=labels,
        clean=np.array([1, 0, 0, 1]),  # clean accuracy 0
        points=np.array([[0, 1, 0, 0], [0, 1, 1, 1], [0, 1, 0, 0]]),
    )
    sweep = make_sweep(scales=(0.5, 0.6, 0.7))
    clean, points, s = summarise(sweep, pred, num_classes=2)
    assert clean.accuracy == 0.0
    assert s.relative_robustness is None  # mean / 0 is undefined, not NaN
    assert [p.accuracy for p in points] == [0.75, 0.75, 0.75]
    assert s.worst_point == AffineParams(0.5)  # ties: the first point
    assert s.all_points_accuracy == 0.5  # images 0 and 1
    assert s.consistency == 0.5  # images 0 and 1 keep their prediction
    assert [p.flip_rate for p in points] == [0.75, 0.75, 0.75]
    with pytest.raises(ValueError, match=r"sweep has 2 points but predictions have 3 rows"):
        summarise(make_sweep(scales=(0.5, 0.6)), pred, num_classes=2)


def test_round_trip_and_files(small, tiny, tmp_path):
    result = evaluate(
        tiny,
        small,
        make_sweep(angles=(-30.0, 0.0, 30.0)),
        options=EvalOptions(interpolation="nearest"),
    )
    assert EvalResult.from_dict(result.to_dict()) == result
    out = tmp_path / "sub" / "r.json"
    write_result(result, out)
    assert predictions_path(out).name == "r.predictions.npz"
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.json", "r.predictions.npz"]
    loaded = load_result(out)
    assert loaded == result
    assert np.array_equal(loaded.predictions.points, result.predictions.points)
    data = json.loads(out.read_text())
    assert data["schema"] == "geomrobust.eval/1"
    assert data["points"][0]["angle_deg"] == -30.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**data, "schema": "other/1"}))
    from geomrobust.robustness import EvalInputError

    with pytest.raises(EvalInputError, match=r"schema is 'other/1'; expected 'geomrobust.eval/1'"):
        load_result(bad)


def test_pair_result_round_trips_through_its_files(tmp_path, small):
    import torch

    from geomrobust.models import build_model
    from geomrobust.robustness import evaluate_pairs
    from geomrobust.robustness._io import predictions_path, write_pair_result
    from geomrobust.robustness._pairs_eval import PairResult

    torch.manual_seed(0)
    result = evaluate_pairs(build_model("pair-net").eval(), small, num_pairs=30, seed=1)
    path = write_pair_result(result, tmp_path / "pairs.json")
    data = json.loads(path.read_text())
    with np.load(predictions_path(path)) as npz:
        assert np.array_equal(npz["labels"], np.arange(30) % 7)
        back = PairResult.from_dict(data, predictions=npz["predictions"])
    assert back == result
    assert np.array_equal(back.predictions, result.predictions)
    assert back.to_dict() == result.to_dict()
    data["schema"] = "geomrobust.eval/1"
    with pytest.raises(ValueError, match="not a pair-classifier result"):
        PairResult.from_dict(data)
