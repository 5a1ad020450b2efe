"""How the engine calls the model: mixed precision, channels-last, compile, out-of-memory
retries and what the result records, on CPU; the same on CUDA where there is one."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from geomrobust.models import build_model, deform_kernels
from geomrobust.robustness import (
    AttackConfig,
    EvalOptions,
    ForwardOptions,
    attack,
    evaluate,
    evaluate_pairs,
)
from geomrobust.robustness._engine import EvalPlan
from geomrobust.robustness._forward import ModelForward, Passes
from geomrobust.transforms import make_sweep
from geomrobust.transforms.datasets import DataFingerprint, ImageDataset, array_sha256

N = 20
SWEEP = make_sweep(scales=(0.8, 1.0, 1.2))
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _data(n: int = N, shape=(1, 28, 28)) -> ImageDataset:
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(n, *shape, generator=gen)
    labels = torch.arange(n) % 10
    fp = DataFingerprint(
        "random", "test", n, array_sha256(images.numpy()), array_sha256(labels.numpy())
    )
    return ImageDataset("random", "test", images, labels, tuple(str(i) for i in range(10)), fp)


def _model(device="cpu") -> nn.Module:
    torch.manual_seed(0)
    return build_model("mnist-cnn").eval().to(device)


def _eval(model, data=None, **options):
    opts = EvalOptions(mean=(0.5,), std=(0.25,), batch_size=8, **options)
    return evaluate(model, data or _data(), SWEEP, options=opts)


class OutOfMemoryAbove(nn.Module):
    """Wraps a model; raises CUDA's out-of-memory error on passes of more than ``limit``
    images, as a GPU does on a batch too large for it."""

    def __init__(self, model: nn.Module, limit: int):
        super().__init__()
        self.model, self.limit, self.sizes = model, limit, []
        self.num_classes = getattr(model, "num_classes", None)

    def forward(self, *x):
        self.sizes.append(x[0].shape[0])
        if x[0].shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.model(*x)


def test_defaults_are_exact_and_recorded():
    result = _eval(_model())
    run = result.run
    assert (run["graph"], run["amp"], run["channels_last"], run["compile"]) == (
        "eager",
        None,
        False,
        False,
    )
    assert (run["cpu_fast_path"], run["numerics"], run["pin_memory"]) == (True, "exact", False)
    assert run["oom_halvings"] == 0


def test_a_deformable_models_kernel_is_recorded_and_keys_the_partial_results():
    torch.manual_seed(0)
    twin = build_model("mnist-cnn-dcnv2").eval()
    kernel = deform_kernels(twin, torch.device("cpu"), torch.float32)
    assert kernel in ("compiled", "python")
    assert _eval(twin).run["deform_kernel"] == kernel
    assert "deform_kernel" not in _eval(_model()).run
    opts = EvalOptions(mean=(0.5,), std=(0.25,), batch_size=8)
    assert EvalPlan(twin, _data(), SWEEP, options=opts).partial_key()["deform_kernel"] == kernel
    assert "deform_kernel" not in EvalPlan(_model(), _data(), SWEEP, options=opts).partial_key()


@pytest.mark.parametrize(
    ("options", "numerics"),
    [
        ({"graph": "onednn"}, "graph=onednn"),
        ({"amp": "bf16", "channels_last": True}, "amp=bf16,channels_last"),
        ({"compile": True}, "compile"),
    ],
)
def test_numerics_name_what_changes_bits(options, numerics):
    assert ForwardOptions(**options).numerics() == numerics
    assert not ForwardOptions(**options).exact


def test_amp_bf16_on_cpu_runs_in_bf16_and_is_recorded():
    model = _model()
    seen = []
    model.fc.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    exact = _eval(model, cpu_fast_path=False)
    seen.clear()
    mixed = _eval(model, amp="bf16")
    assert set(seen) == {torch.bfloat16}  # autocast ran the layers in bf16
    assert (mixed.run["amp"], mixed.run["numerics"]) == ("bf16", "amp=bf16")
    # bf16 keeps 8 bits of mantissa: the probabilities move, most predictions do not
    assert np.abs(mixed.predictions.probs - exact.predictions.probs).max() < 0.1
    assert (mixed.predictions.points == exact.predictions.points).mean() >= 0.9


def test_channels_last_gives_the_model_channels_last_images():
    model = _model()
    formats = []
    model.conv1.register_forward_pre_hook(
        lambda m, i: formats.append(i[0].is_contiguous(memory_format=torch.channels_last))
    )
    result = _eval(model, channels_last=True)
    assert formats
    assert all(formats)
    assert result.run["channels_last"] is True
    assert next(model.parameters()).is_contiguous()  # the caller's model is not changed
    exact = _eval(model)
    np.testing.assert_allclose(result.predictions.probs, exact.predictions.probs, atol=1e-4)


def test_a_failed_compile_runs_eagerly_with_a_warning(monkeypatch, caplog):
    def broken(model, **_):
        def run(*x):
            raise RuntimeError("InductorError: no C compiler found (cc)")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    with caplog.at_level(logging.WARNING):
        result = _eval(_model(), compile=True)
    assert result.run["compile"] is False
    assert any(
        "cannot be compiled" in r.getMessage() and "cc" in r.getMessage() for r in caplog.records
    )
    exact = _eval(_model())
    assert np.array_equal(result.predictions.points, exact.predictions.points)


def test_compile_runs_and_is_close_to_eager():
    pytest.importorskip("torch._inductor")
    model = _model()
    result = _eval(model, _data(8), compile=True)
    if not result.run["compile"]:
        pytest.skip("torch.compile is not available here (no C compiler?)")
    exact = _eval(model, _data(8))
    np.testing.assert_allclose(result.predictions.probs, exact.predictions.probs, atol=1e-4)


def test_out_of_memory_halves_the_passes_and_gives_the_same_result(caplog):
    model = _model()
    want = _eval(model)
    small = OutOfMemoryAbove(model, limit=3).eval()
    with caplog.at_level(logging.WARNING):
        got = _eval(small)
    assert np.array_equal(got.predictions.points, want.predictions.points)
    assert np.array_equal(got.predictions.probs, want.predictions.probs)
    assert got.run["oom_halvings"] == 2  # 8 -> 4 -> 2, then every pass fits
    assert max(small.sizes[-10:]) <= 2
    messages = [r.getMessage() for r in caplog.records if "out of memory" in r.getMessage()]
    assert messages[0].startswith("warning: out of memory on a forward pass of 8 images")
    assert "retrying with passes of 4" in messages[0]


def test_out_of_memory_on_one_image_is_raised():
    with pytest.raises(torch.OutOfMemoryError, match="Tried to allocate"):
        _eval(OutOfMemoryAbove(_model(), limit=0).eval())


def test_the_attack_retries_out_of_memory_too():
    model = _model()
    config = AttackConfig(k=3, grid=(3, 1, 1))
    opts = EvalOptions(mean=(0.5,), std=(0.25,), batch_size=8)
    want = attack(model, _data(), config, options=opts)
    got = attack(OutOfMemoryAbove(model, limit=4).eval(), _data(), config, options=opts)
    assert got.run["oom_halvings"] == 1  # 8 -> 4
    assert got.arrays.keys() == want.arrays.keys()
    for name, values in want.arrays.items():
        assert np.array_equal(got.arrays[name], values, equal_nan=True), name


def test_passes_cover_the_range_in_order():
    seen = []
    passes = Passes(limit=4)
    passes.run(3, 14, lambda a, b: seen.append((a, b)))
    assert seen == [(3, 7), (7, 11), (11, 14)]


def test_pairs_record_the_forward_and_retry_out_of_memory():
    torch.manual_seed(0)
    model = build_model("pair-net").eval()
    data = _data(30)
    want = evaluate_pairs(model, data, num_pairs=24, batch_size=12)
    got = evaluate_pairs(
        OutOfMemoryAbove(model, limit=5).eval(),
        data,
        num_pairs=24,
        batch_size=12,
        forward=ForwardOptions(graph="freeze"),
    )
    plain = evaluate_pairs(
        model, data, num_pairs=24, batch_size=12, forward=ForwardOptions(cpu_fast_path=False)
    )
    assert np.array_equal(want.predictions, plain.predictions)  # the exact fast path
    assert (want.run["cpu_fast_path"], plain.run["cpu_fast_path"]) == (True, False)
    assert np.array_equal(got.predictions, want.predictions)
    assert got.run["oom_halvings"] == 2  # 12 -> 6 -> 3
    assert (got.run["graph"], got.run["numerics"]) == ("freeze", "exact")
    assert want.run["graph"] == "eager"


def test_model_forward_checks_a_traced_graph_against_eager():
    model = _model()
    x = torch.rand(4, 1, 28, 28)
    forward = ModelForward(model, torch.device("cpu"), ForwardOptions(graph="freeze"))
    with torch.inference_mode():
        assert torch.equal(forward(x), model(x))
    assert forward.record()["graph"] == "freeze"


@needs_cuda
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"amp": "bf16"},
        {"amp": "fp16"},
        {"channels_last": True},
        {"graph": "freeze"},
        {"compile": True},
    ],
)
def test_cuda_options_agree_with_cpu(options):
    cpu = _eval(_model())
    gpu = _eval(_model("cuda"), **options)
    assert gpu.run["device"].startswith("cuda")
    assert gpu.run["pin_memory"] is True
    assert gpu.run["cpu_fast_path"] is False
    for key, value in options.items():
        assert gpu.run[key] == value
    tol = 0.1 if "amp" in options else 1e-3
    assert np.abs(gpu.predictions.probs - cpu.predictions.probs).max() < tol
    assert (gpu.predictions.points == cpu.predictions.points).mean() >= 0.9
