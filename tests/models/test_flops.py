"""Parameter and FLOP counts, checked by hand on small models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from geomrobust.models import (
    DeformConv2dBlock,
    build_model,
    count_flops,
    count_params,
    get_model_info,
)


def test_mnist_cnn_counts_by_hand():
    # conv1: 28·28·32 outputs × 1·3·3 MACs; conv2: 14·14·32 × 32·9; conv3-5: 7·7·32 × 32·9 each;
    # fc: 32·10. FLOPs = 2 × MACs.
    macs = 28 * 28 * 32 * 9 + 14 * 14 * 32 * 288 + 3 * 7 * 7 * 32 * 288 + 32 * 10
    params = (32 * 9 + 32) + 4 * (32 * 288 + 32) + (32 * 10 + 10)
    info = get_model_info("mnist-cnn")
    assert info.flops == 2 * macs == 6_774_400
    assert info.params == params == 37_642


def test_deformable_extras_by_hand():
    # Each of conv4/conv5 adds an offset conv (32→18) and a mask conv (32→9) at 7×7, and
    # bilinear sampling (8 FLOPs) plus modulation (1 FLOP) per sampled value 32·9·7·7.
    per_layer_flops = 2 * 7 * 7 * (18 + 9) * 288 + 9 * 32 * 9 * 7 * 7
    per_layer_params = (18 + 9) * 288 + 18 + 9
    plain, dcn = get_model_info("mnist-cnn"), get_model_info("mnist-cnn-dcnv2")
    assert dcn.flops - plain.flops == 2 * per_layer_flops
    assert dcn.params - plain.params == 2 * per_layer_params
    v1 = get_model_info("mnist-cnn-dcnv2", modulated=False)
    assert v1.flops - plain.flops == 2 * (2 * 7 * 7 * 18 * 288 + 8 * 32 * 9 * 7 * 7)


def test_resnet18_cifar_counts():
    # The well-known figures for CIFAR ResNet-18: 11,173,962 parameters, 0.56 GMACs.
    info = get_model_info("resnet18-cifar")
    assert info.params == 11_173_962
    assert info.flops == 1_110_845_440


def test_flops_scale_with_batch_and_count_pairs_twice():
    model = build_model("mnist-cnn")
    one = count_flops(model, torch.rand(1, 1, 28, 28))
    assert count_flops(model, torch.rand(3, 1, 28, 28)) == 3 * one
    pair = build_model("pair-net")
    x = torch.rand(1, 1, 28, 28)
    head = 2 * (4 * 32 * 128 + 128 * 7)
    assert count_flops(pair, x, x) == 2 * (one - 2 * 32 * 10) + head


def test_count_flops_leaves_the_model_as_it_was():
    model = build_model("resnet18-cifar")
    model.layer1.eval()  # a mixed state must come back as it was
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_flops(model, torch.rand(1, 3, 32, 32))
    assert model.training
    assert not model.layer1.training
    assert model.layer2.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(m._forward_hooks for m in model.modules())


def test_count_params():
    block = DeformConv2dBlock(2, 3, 3)
    assert count_params(block) == 3 * 2 * 9 + 3 + (18 + 9) * 2 * 9 + 18 + 9
    frozen = nn.Linear(4, 2)
    frozen.bias.requires_grad_(False)
    assert count_params(frozen) == 10
    assert count_params(frozen, trainable_only=True) == 8


def test_errors():
    with pytest.raises(TypeError, match="count_flops needs at least one example input"):
        count_flops(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="model must be an nn.Module; got str"):
        count_params("mnist-cnn")
