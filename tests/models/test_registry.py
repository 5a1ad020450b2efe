"""The registry: names, errors, options, specs and the info it reports."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from geomrobust import models
from geomrobust.models import (
    _registry,
    build_model,
    get_model_info,
    list_models,
    model_spec,
    register_model,
)
from geomrobust.models._flops import count_params

EXPECTED = {
    "mnist-cnn",
    "mnist-cnn-dcnv2",
    "cifar-small",
    "cifar-small-dcn",
    "resnet18-cifar",
    "resnet34-cifar",
    "pair-net",
}


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the registry that tests may add to; restored afterwards."""
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    _registry._cached_info.cache_clear()
    yield _registry._REGISTRY
    _registry._cached_info.cache_clear()


def _tiny(*, in_channels, num_classes, input_size, device=None, dtype=None, width: int = 2):
    """A tiny test model."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 1, device=device, dtype=dtype),
        nn.Flatten(),
        nn.Linear(width * input_size[0] * input_size[1], num_classes, device=device, dtype=dtype),
    )


def test_list_models():
    assert set(list_models()) >= EXPECTED
    assert list_models() == sorted(list_models())


def test_unknown_name_lists_valid_choices():
    with pytest.raises(
        ValueError, match=r"unknown model 'mnist-cn'; valid: \[.*'mnist-cnn'.*\]"
    ) as e:
        build_model("mnist-cn")
    assert "Did you mean 'mnist-cnn'?" in str(e.value)
    with pytest.raises(ValueError, match="unknown model 'nope'; valid: "):
        get_model_info("nope")
    with pytest.raises(TypeError, match="model name must be a str; got int"):
        build_model(3)


def test_duplicate_name_raises(scratch_registry):
    with pytest.raises(
        ValueError, match=r"model 'mnist-cnn' is already registered \(by geomrobust\.models\."
    ):
        register_model("mnist-cnn", input_shape=(1, 28, 28))(_tiny)
    assert scratch_registry["mnist-cnn"].builder is not _tiny


def test_register_and_build(scratch_registry):
    register_model("tiny", input_shape=(1, 4, 4), num_classes=3)(_tiny)
    model = build_model("tiny", width=4)
    assert model(torch.rand(2, 1, 4, 4)).shape == (2, 3)
    assert model_spec(model) == (
        "tiny",
        {"in_channels": 1, "num_classes": 3, "input_size": [4, 4], "width": 4},
    )
    info = get_model_info("tiny")
    assert info.options == ("width",)
    assert info.description == "A tiny test model."


def test_register_checks_builder_and_names(scratch_registry):
    def bad(*, in_channels, num_classes):
        return nn.Identity()

    with pytest.raises(TypeError, match=r"must take keyword-only arguments .*missing \["):
        register_model("bad", input_shape=(1, 4, 4))(bad)
    with pytest.raises(ValueError, match="model name must be lowercase letters"):
        register_model("Bad Name", input_shape=(1, 4, 4))
    with pytest.raises(ValueError, match="model name must be lowercase .*got 'a:b'"):
        register_model("a:b", input_shape=(1, 4, 4))
    with pytest.raises(ValueError, match="twin_of='nope' is not registered"):
        register_model("x", input_shape=(1, 4, 4), twin_of="nope")
    with pytest.raises(ValueError, match=r"input_shape must be \(C, H, W\)"):
        register_model("x", input_shape=(4, 4))


def test_unknown_option_lists_the_builders_options():
    with pytest.raises(
        TypeError,
        match=r"'mnist-cnn-dcnv2' takes no option\(s\) \['deformable_stages'\]; its options "
        r"are \['modulated', 'offset_bound', 'offset_bound_frac'\]",
    ):
        build_model("mnist-cnn-dcnv2", deformable_stages=(1,))


def test_standard_argument_errors():
    with pytest.raises(ValueError, match="in_channels must be an int >= 1; got 0"):
        build_model("mnist-cnn", in_channels=0)
    with pytest.raises(TypeError, match="num_classes must be an int >= 0; got 2.5"):
        build_model("mnist-cnn", num_classes=2.5)
    with pytest.raises(TypeError, match="num_classes must be an int >= 0; got True"):
        build_model("mnist-cnn", num_classes=True)
    with pytest.raises(TypeError, match=r"input_size must be an int or a pair \(h, w\)"):
        build_model("mnist-cnn", input_size=(1, 2, 3))
    with pytest.raises(ValueError, match="mnist-cnn needs input_size of at least 4x4"):
        build_model("mnist-cnn", input_size=3)
    with pytest.raises(ValueError, match="cifar-small needs input_size of at least 8x8"):
        build_model("cifar-small", input_size=7)
    with pytest.raises(ValueError, match=r"deformable_stages must be distinct ints in 1..4"):
        build_model("resnet18-cifar", deformable_stages=(5,))
    with pytest.raises(TypeError, match="deformable_stages must be a sequence"):
        build_model("resnet18-cifar", deformable_stages=3)


def test_model_spec_rebuilds_the_same_architecture():
    model = build_model("resnet18-cifar", in_channels=1, num_classes=4, deformable_stages=[4])
    name, args = model_spec(model)
    assert name == "resnet18-cifar"
    assert args["deformable_stages"] == [4]
    again = build_model(name, **args)
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    assert model_spec(nn.Linear(2, 2)) is None


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_info_counts_match_the_built_model(name):
    info = get_model_info(name)
    model = build_model(name)
    assert info.params == count_params(model)
    assert info.flops > 0
    assert info.num_inputs == (2 if name == "pair-net" else 1)
    assert info.deformable == any(isinstance(m, models.DeformConv2dBlock) for m in model.modules())
    assert info.to_dict()["params"] == info.params


def test_info_of_a_configuration():
    plain = get_model_info("resnet18-cifar")
    dcn = get_model_info("resnet18-cifar", deformable_stages=(2, 3, 4))
    assert not plain.deformable
    assert dcn.deformable
    assert dcn.params > plain.params
    assert dcn.flops > plain.flops
    gray = get_model_info("cifar-small", in_channels=1, input_size=28)
    assert gray.input_shape == (1, 28, 28)
    # fc1 shrinks from 25·7·7 to 25·6·6 inputs, conv1 from 3 to 1 input channel.
    base = get_model_info("cifar-small")
    assert base.params - gray.params == 25 * (49 - 36) * 300 + 2 * 9 * 40


def test_twins_are_declared():
    assert get_model_info("mnist-cnn-dcnv2").twin_of == "mnist-cnn"
    assert get_model_info("cifar-small-dcn").twin_of == "cifar-small"
    assert get_model_info("mnist-cnn").twin_of is None


def test_build_follows_device_and_dtype(device, dtype):
    model = build_model("mnist-cnn-dcnv2", device=device, dtype=dtype)
    assert {p.dtype for p in model.parameters()} == {dtype}
    assert {p.device.type for p in model.parameters()} == {torch.device(device).type}
    out = model(torch.rand(2, 1, 12, 12, device=device, dtype=dtype))
    assert out.dtype == dtype
