"""Every registered model, driven by the registry; twins; architecture specifics."""

from __future__ import annotations

import pytest
import torch

from geomrobust.models import DeformConv2dBlock, build_model, get_model_info, list_models


def _inputs(name: str, batch: int, *, in_channels: int | None = None, dtype=None):
    info = get_model_info(name, in_channels=in_channels)
    return [torch.rand(batch, *info.input_shape, dtype=dtype) for _ in range(info.num_inputs)]


@pytest.mark.parametrize("batch", [1, 0])
@pytest.mark.parametrize("name", list_models())
def test_forward_backward_on_cpu(name, batch):
    torch.manual_seed(0)
    model = build_model(name)
    info = get_model_info(name)
    inputs = _inputs(name, batch)
    out = model(*inputs)
    assert out.shape == (batch, info.num_classes)
    assert torch.isfinite(out).all()
    out.sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        if batch == 0:
            assert not p.grad.any()


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("name", list_models())
def test_any_channels_and_class_count(name, in_channels):
    model = build_model(name, in_channels=in_channels, num_classes=5).eval()
    with torch.no_grad():
        out = model(*_inputs(name, 2, in_channels=in_channels))
    assert out.shape == (2, 5)


@pytest.mark.parametrize("name", list_models())
def test_num_classes_zero_returns_features(name):
    model = build_model(name, num_classes=0).eval()
    with torch.no_grad():
        out = model(*_inputs(name, 2))
    assert out.shape == (2, model.num_features)


def _twins() -> list[tuple[str, str, dict]]:
    pairs = [(get_model_info(n).twin_of, n, {}) for n in list_models()]
    pairs = [p for p in pairs if p[0] is not None]
    for stages in [(4,), (2, 3, 4)]:
        pairs.append(("resnet18-cifar", "resnet18-cifar", {"deformable_stages": stages}))
    pairs.append(("cifar-small", "cifar-small-dcn", {"modulated": True}))
    pairs.append(("mnist-cnn", "mnist-cnn-dcnv2", {"modulated": False}))
    return pairs


@pytest.mark.parametrize(("regular", "twin", "options"), _twins())
def test_twin_at_init_equals_regular_with_copied_weights(regular, twin, options):
    torch.manual_seed(1)
    plain = build_model(regular, dtype=torch.float64).eval()
    torch.manual_seed(2)  # a different draw: only the copy makes them agree
    dcn = build_model(twin, dtype=torch.float64, **options).eval()
    assert any(isinstance(m, DeformConv2dBlock) for m in dcn.modules())
    # The swap is the only difference: every regular weight exists in the twin, same shape.
    plain_state, dcn_state = plain.state_dict(), dcn.state_dict()
    assert all(dcn_state[k].shape == v.shape for k, v in plain_state.items())
    extra = set(dcn_state) - set(plain_state)
    assert extra
    assert all(".offset_conv." in k or ".mask_conv." in k for k in extra)
    result = dcn.load_state_dict(plain_state, strict=False)
    assert set(result.missing_keys) == extra
    assert not result.unexpected_keys
    x = torch.rand(2, *get_model_info(regular).input_shape, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(dcn(x), plain(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("regular", "twin"), [("mnist-cnn", "mnist-cnn-dcnv2")])
def test_twin_with_same_seed_draws_the_same_network(regular, twin):
    torch.manual_seed(3)
    plain = build_model(regular).eval()
    torch.manual_seed(3)
    dcn = build_model(twin).eval()
    for key, value in plain.state_dict().items():
        assert torch.equal(dcn.state_dict()[key], value), key
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(dcn(x), plain(x))


def test_mnist_cnn_layout():
    model = build_model("mnist-cnn")
    convs = [model.get_submodule(f"conv{i}") for i in range(1, 6)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 32)] + [(32, 32)] * 4
    assert model.fc.in_features == 32
    assert model.fc.out_features == 10
    dcn = build_model("mnist-cnn-dcnv2")
    kinds = [type(dcn.get_submodule(f"conv{i}")).__name__ for i in range(1, 6)]
    assert kinds == ["Conv2d", "Conv2d", "Conv2d", "DeformConv2dBlock", "DeformConv2dBlock"]
    assert build_model("mnist-cnn-dcnv2", offset_bound_frac=0.25).conv4.offset_bound_frac == 0.25


def test_cifar_small_layout():
    model = build_model("cifar-small")
    assert (model.conv1.out_channels, model.conv1.kernel_size) == (40, (3, 3))
    assert (model.conv2.out_channels, model.conv2.kernel_size) == (25, (2, 2))
    assert model.fc1.in_features == 25 * 7 * 7
    assert [model.fc1.out_features, model.fc2.out_features, model.fc3.out_features] == [
        300,
        100,
        10,
    ]
    dcn = build_model("cifar-small-dcn")
    assert isinstance(dcn.conv1, DeformConv2dBlock)
    assert isinstance(dcn.conv2, DeformConv2dBlock)
    assert not dcn.conv1.modulated  # DCNv1, as the original
    assert build_model("cifar-small-dcn", modulated=True).conv2.modulated


def test_resnet_deformable_stages_swap_only_those_stages():
    model = build_model("resnet18-cifar", deformable_stages=(3, 4))
    for stage in range(1, 5):
        blocks = model.get_submodule(f"layer{stage}")
        for block in blocks:
            is_dcn = isinstance(block.conv1, DeformConv2dBlock)
            assert is_dcn == (stage in (3, 4))
            assert isinstance(block.conv2, DeformConv2dBlock) == is_dcn
    assert sum(len(model.get_submodule(f"layer{i}")) for i in range(1, 5)) == 8
    deep = build_model("resnet34-cifar")
    assert [len(deep.get_submodule(f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]


def test_input_errors():
    model = build_model("mnist-cnn")
    with pytest.raises(ValueError, match=r"built for 1 input channel\(s\); images has 3"):
        model(torch.rand(1, 3, 28, 28))
    with pytest.raises(
        ValueError, match=r"images must have shape \(B, C, H, W\); got \(1, 28, 28\)"
    ):
        model(torch.rand(1, 28, 28))
    with pytest.raises(TypeError, match="images must be a floating tensor; got torch.uint8"):
        model(torch.zeros(1, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(
        ValueError, match=r"cifar-small was built for 32x32 inputs; images are 28x28"
    ):
        build_model("cifar-small")(torch.rand(1, 3, 28, 28))


def test_pair_net():
    torch.manual_seed(0)
    model = build_model("pair-net").eval()
    a, b = torch.rand(3, 1, 28, 28), torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        ab, ba = model(a, b), model(b, a)
        # One shared encoder: the pair's features are the encoder's on each image.
        fa, fb = model.encoder(a), model.encoder(b)
        z = torch.cat([fa, fb, fa - fb, fa * fb], dim=1)
        expected = model.fc2(model.fc1(z).relu())
    assert ab.shape == (3, 7)
    torch.testing.assert_close(ab, expected)
    assert not torch.allclose(ab, ba), "the order of the pair must matter"
    assert build_model("pair-net", num_classes=8)(a, b).shape == (3, 8)
    dcn = build_model("pair-net", encoder="mnist-cnn-dcnv2", encoder_options={"modulated": False})
    assert isinstance(dcn.encoder.conv5, DeformConv2dBlock)


def test_pair_net_errors():
    model = build_model("pair-net")
    with pytest.raises(ValueError, match=r"a and b of the same shape; got \(2, 1, 28, 28\) and"):
        model(torch.rand(2, 1, 28, 28), torch.rand(1, 1, 28, 28))
    with pytest.raises(ValueError, match=r"b must have shape \(B, C, H, W\)"):
        model(torch.rand(2, 1, 28, 28), torch.rand(2, 28, 28))
    with pytest.raises(ValueError, match="encoder must be a single-image model; 'pair-net'"):
        build_model("pair-net", encoder="pair-net")
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        build_model("pair-net", encoder="nope")
    with pytest.raises(ValueError, match=r"encoder_options must not set \['num_classes'\]"):
        build_model("pair-net", encoder_options={"num_classes": 3})
