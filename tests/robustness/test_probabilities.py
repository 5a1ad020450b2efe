"""Per-image probabilities of an evaluation and the MAC of each point, against an
independent computation with the same warps."""

from __future__ import annotations

import numpy as np
import torch

from geomrobust.models import build_model
from geomrobust.robustness import EvalOptions, evaluate, load_result, write_result
from geomrobust.transforms import make_sweep, warp
from geomrobust.transforms.datasets import load_dataset


def test_probabilities_and_mac_match_an_independent_computation(tmp_path):
    data = load_dataset("digits", split="test").head(50)
    torch.manual_seed(0)
    model = build_model("mnist-cnn").eval()
    sweep = make_sweep(angles=(-20.0, 0.0, 20.0))
    result = evaluate(model, data, sweep, options=EvalOptions(batch_size=16))
    pred = result.predictions
    with torch.no_grad():
        clean_p = torch.softmax(model(data.images), dim=1)
        top1 = clean_p.argmax(1)
        rows = torch.arange(50)
        for i, point in enumerate(sweep.points):
            p = torch.softmax(model(warp(data.images, point)), dim=1)
            expected = torch.stack(
                [p[rows, data.labels], p.max(1).values, p[rows, top1]], dim=1
            ).numpy()
            assert np.allclose(pred.probs[i], expected, atol=1e-6)
            mac = np.abs(expected[:, 2] - clean_p.max(1).values.numpy()).mean()
            assert (
                result.points[i].mean_abs_prob_change == np.float64(mac).item()
                or abs(result.points[i].mean_abs_prob_change - mac) < 1e-6
            )
    assert result.points[1].mean_abs_prob_change == 0.0  # the identity
    assert result.points[0].mean_abs_prob_change > 0.0
    write_result(result, tmp_path / "r.json")
    back = load_result(tmp_path / "r.json").predictions
    assert np.array_equal(back.probs, pred.probs)
    assert np.array_equal(back.clean_probs, pred.clean_probs)
