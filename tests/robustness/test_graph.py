"""The engine's fast paths against eager, for every image classifier in the registry, on a
small sweep (random weights, random images of the model's shape): the default CPU fast path
(``cpu_fast_path``) and ``graph="freeze"`` bit for bit, ``graph="onednn"`` close."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from geomrobust.models import build_model, get_model_info, list_models
from geomrobust.models._deform_ext import compiled_kernel_available
from geomrobust.robustness import EvalInputError, EvalOptions, evaluate
from geomrobust.transforms import make_sweep
from geomrobust.transforms.datasets import DataFingerprint, ImageDataset, array_sha256

CLASSIFIERS = [n for n in list_models() if get_model_info(n).num_inputs == 1]
N = 24
SWEEP = make_sweep(scales=(0.8, 1.0, 1.2), angles=(0.0, 30.0))


def _data(shape: tuple[int, int, int], seed: int = 0) -> ImageDataset:
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(N, *shape, generator=gen)
    labels = torch.arange(N) % 10
    fp = DataFingerprint(
        "random", "test", N, array_sha256(images.numpy()), array_sha256(labels.numpy())
    )
    return ImageDataset("random", "test", images, labels, tuple(str(i) for i in range(10)), fp)


def _run(model, data, graph: str, **extra):
    options = EvalOptions(mean=(0.5,), std=(0.25,), batch_size=10, graph=graph, **extra)
    return evaluate(model, data, SWEEP, options=options)


def _eager_and(name: str, graph: str, **extra):
    """Results of a fresh ``name`` (random weights) on random images, plain eager (no CPU
    fast path) and ``graph`` with ``extra`` options."""
    torch.manual_seed(0)
    model = build_model(name).eval()
    data = _data(get_model_info(name).input_shape)
    return _run(model, data, "eager", cpu_fast_path=False), _run(model, data, graph, **extra)


def _assert_same_predictions(a, b) -> None:
    assert np.array_equal(a.predictions.points, b.predictions.points)
    assert np.array_equal(a.predictions.clean, b.predictions.clean)
    assert np.array_equal(a.predictions.probs, b.predictions.probs)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_the_cpu_fast_path_gives_eagers_predictions_bit_for_bit(name):
    eager, fast = _eager_and(name, "eager")
    assert eager.run["cpu_fast_path"] is False
    assert (fast.run["cpu_fast_path"], fast.run["numerics"]) == (True, "exact")
    _assert_same_predictions(fast, eager)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_freeze_gives_eagers_predictions_bit_for_bit(name, caplog):
    eager, frozen = _eager_and(name, "freeze")
    assert eager.run["graph"] == "eager"
    # A model the tracer cannot follow falls back to eager, with a warning; either way the
    # predictions are eager's, bit for bit.
    fell_back = [r.getMessage() for r in caplog.records if "runs eagerly" in r.getMessage()]
    if fell_back:
        # only the deformable twins, and only on the plain-PyTorch kernel (a Python
        # autograd.Function the tracer cannot follow); the compiled kernel's ops trace
        assert "dcn" in name
        assert not compiled_kernel_available()
        assert "cannot be traced" in fell_back[0]
        assert frozen.run["graph"] == "eager"
    else:
        assert frozen.run["graph"] == "freeze"
    _assert_same_predictions(frozen, eager)


def test_freeze_keeps_batchnorm_apart_and_exact(caplog):
    """``torch.jit.freeze`` folds BatchNorm into convolutions by default, which changes the
    logits' bits (the check against eager then falls back); ours does not fold."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    data = _data((3, 32, 32))
    eager = _run(model, data, "eager", cpu_fast_path=False)
    with caplog.at_level(logging.WARNING):
        frozen = _run(model, data, "freeze")
    assert frozen.run["graph"] == "freeze"
    assert not any("runs eagerly" in r.getMessage() for r in caplog.records)
    _assert_same_predictions(frozen, eager)


@pytest.mark.parametrize("name", ["mnist-cnn", "cifar-small"])
def test_onednn_is_recorded_and_close_to_eager(name):
    eager, fused = _eager_and(name, "onednn")
    assert fused.run["graph"] == "onednn"
    np.testing.assert_allclose(fused.predictions.probs, eager.predictions.probs, atol=1e-4)


def test_an_untraceable_model_runs_eagerly_with_a_warning(caplog):
    class Untraceable(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(28 * 28, 10)

        def forward(self, x):
            if torch.jit.is_tracing():  # as a model with Python the tracer cannot follow
                raise RuntimeError("this model cannot be traced")
            return self.fc(x.flatten(1))

    model = Untraceable().eval()
    with caplog.at_level(logging.WARNING):
        result = _run(model, _data((1, 28, 28)), "freeze")
    assert result.run["graph"] == "eager"
    assert any("cannot be traced" in r.getMessage() for r in caplog.records)


def test_unknown_graph_is_refused():
    with pytest.raises(
        EvalInputError, match=r"graph must be one of \['eager', 'freeze', 'onednn'\]"
    ):
        EvalOptions(graph="fast")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"amp": "fp8"}, r"amp must be None or one of \['bf16', 'fp16'\]; got 'fp8'"),
        ({"channels_last": "yes"}, "channels_last must be True or False; got 'yes'"),
        ({"compile": True, "graph": "freeze"}, "compile and graph='freeze' are two ways"),
    ],
)
def test_bad_forward_options_are_refused(options, message):
    with pytest.raises(EvalInputError, match=message):
        EvalOptions(**options)
