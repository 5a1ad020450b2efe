"""Index-keyed sampling: determinism across batching and devices, bounds, global RNG untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomrobust.transforms import (
    AffineSampler,
    IntervalSet,
    RandomAffine,
    ShiftDistribution,
    resolve_seed,
)


@pytest.fixture(params=[0, 1, 12345, 2**63 + 7])
def seed(request):
    return request.param


def _sampler(seed, **kwargs):
    defaults = {
        "scale": (0.5, 1.5),
        "angle_deg": (-30, 30),
        "shift": ShiftDistribution.box((-3, 3), (-2, 2)),
    }
    return AffineSampler(**{**defaults, **kwargs}, generator=seed)


def test_image_i_gets_the_same_parameters_whatever_the_batching(seed):
    sampler = _sampler(seed)
    whole = sampler(100)
    parts = [sampler(torch.arange(i, min(i + 7, 100))) for i in range(0, 100, 7)]
    assert torch.equal(torch.cat([p.scale for p in parts]), whole.scale)
    assert torch.equal(torch.cat([p.angle_deg for p in parts]), whole.angle_deg)
    assert torch.equal(torch.cat([p.shift_px for p in parts]), whole.shift_px)
    shuffled = np.random.default_rng(seed % 2**32).permutation(100)
    again = sampler(shuffled)
    assert torch.equal(again.scale, whole.scale[shuffled])


def test_same_seed_same_draws_other_seed_or_epoch_differs(seed):
    a, b = _sampler(seed)(50), _sampler(seed)(50)
    assert torch.equal(a.scale, b.scale)
    assert torch.equal(a.shift_px, b.shift_px)
    assert not torch.equal(_sampler(seed + 1)(50).scale, a.scale)
    assert not torch.equal(_sampler(seed)(50, epoch=1).scale, a.scale)


def test_global_rng_is_untouched(seed):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    sampler = _sampler(seed)
    sampler(1000)
    RandomAffine(sampler)(torch.rand(4, 1, 8, 8, generator=torch.Generator()), torch.arange(4))
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state)


def test_torch_generator_gives_reproducible_seed_and_advances_only_itself():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    s1 = resolve_seed(torch.Generator().manual_seed(7))
    s2 = resolve_seed(torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    assert s1 == s2
    assert resolve_seed(g) == s1
    assert resolve_seed(g) != s1
    assert torch.equal(torch.get_rng_state(), state)


def test_none_gives_fresh_seeds():
    assert resolve_seed(None) != resolve_seed(None)


def test_seed_errors():
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\); got -1"):
        resolve_seed(-1)
    with pytest.raises(TypeError, match="an int seed or None; got bool"):
        resolve_seed(True)
    with pytest.raises(TypeError, match="an int seed or None; got str"):
        resolve_seed("0")


def test_draws_respect_bounds_and_are_spread(seed):
    p = _sampler(seed)(4000)
    assert IntervalSet.of((0.5, 1.5)).contains(p.scale)
    assert IntervalSet.of((-30, 30)).contains(p.angle_deg)
    assert IntervalSet.of((-3, 3)).contains(p.shift_px[:, 0])
    assert IntervalSet.of((-2, 2)).contains(p.shift_px[:, 1])
    # Uniform: mean and quartiles near the theoretical ones (4000 draws, loose bounds).
    assert abs(p.scale.mean().item() - 1.0) < 0.03
    assert abs(torch.quantile(p.angle_deg, 0.25).item() + 15.0) < 2.0


def test_union_of_intervals_avoids_the_gap(seed):
    away = IntervalSet.of([(0.7, 0.85), (1.15, 1.4)])
    p = AffineSampler(scale=away, angle_deg=[(-30, -15), (15, 30)], generator=seed)(3000)
    assert away.contains(p.scale)
    assert not ((p.scale > 0.85) & (p.scale < 1.15)).any()
    assert (p.angle_deg.abs() >= 15).all()
    assert (p.angle_deg.abs() <= 30).all()
    # Proportional to length: 0.15 vs 0.25 of the total 0.4.
    frac_low = (p.scale < 1).double().mean().item()
    assert abs(frac_low - 0.375) < 0.04
    assert abs((p.angle_deg > 0).double().mean().item() - 0.5) < 0.04


def test_polar_shift_in_fractions_of_the_size(seed):
    dist = ShiftDistribution.polar((0.1, 0.2), unit="fraction")
    p = AffineSampler(shift=dist, generator=seed)(2000, size=(40, 40))
    length = p.shift_px.norm(dim=1)
    assert (length >= 4.0 - 1e-9).all()
    assert (length <= 8.0 + 1e-9).all()
    assert (p.shift_px[:, 0] < 0).any()
    assert (p.shift_px[:, 1] < 0).any()
    with pytest.raises(ValueError, match=r"fractions of the image size: pass size=\(H, W\)"):
        AffineSampler(shift=dist, generator=0)(3)


def test_fixed_values_are_picked_evenly():
    p = AffineSampler(angle_deg=[(90, 90), (-90, -90)], generator=3)(2000)
    assert set(p.angle_deg.tolist()) == {90.0, -90.0}
    assert abs((p.angle_deg > 0).double().mean().item() - 0.5) < 0.05


def test_sampler_errors():
    with pytest.raises(ValueError, match=r"scale range must lie in \(0, inf\); got low=0.0"):
        AffineSampler(scale=(0.0, 1.0))
    with pytest.raises(ValueError, match=r"interval low must be <= high; got \(2.0, 1.0\)"):
        AffineSampler(angle_deg=(2, 1))
    with pytest.raises(ValueError, match="polar shift lengths must be >= 0"):
        ShiftDistribution.polar((-1, 1))
    with pytest.raises(ValueError, match=r"shift unit must be one of \['px', 'fraction'\]"):
        ShiftDistribution.box(1, 1, unit="cm")
    with pytest.raises(ValueError, match="indices must be >= 0; got -2"):
        AffineSampler(generator=0)([1, -2])
    with pytest.raises(TypeError, match="indices must be integers; got a torch.float32 tensor"):
        AffineSampler(generator=0)(torch.tensor([1.0]))
    with pytest.raises(ValueError, match="epoch must be an int >= 0; got -1"):
        AffineSampler(generator=0)(3, epoch=-1)


def test_random_affine_module(device):
    sampler = _sampler(5)
    module = RandomAffine(sampler)
    x = torch.rand(6, 1, 12, 12, generator=torch.Generator().manual_seed(0)).to(device)
    y = module(x, torch.arange(10, 16))
    params = module.sample(x, torch.arange(10, 16))
    assert params.scale.device == x.device
    assert torch.equal(module(x, params=params), y)
    # Image 12's result does not depend on the rest of the batch.
    assert torch.equal(module(x[2:3], [12]), y[2:3])
    with pytest.raises(ValueError, match="needs the images' dataset indices"):
        module(x)
    with pytest.raises(ValueError, match="got 2 indices for a batch of B=6 images"):
        module(x, [0, 1])


def test_cpu_and_cuda_draw_the_same_parameters():
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    sampler = _sampler(9)
    cpu, cuda = sampler(64), sampler(64, device="cuda")
    assert torch.equal(cpu.scale, cuda.scale.cpu())
    assert torch.equal(cpu.shift_px, cuda.shift_px.cpu())
