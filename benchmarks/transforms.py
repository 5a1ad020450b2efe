"""Batched transforms against torchvision's per-image path, in one run.

For 10,000 MNIST-size (1×28×28) and 2,000 CIFAR-size (3×32×32) images with per-image random
scale, angle and shift, times:

* ``torchvision per-image``: v1 ``torchvision.transforms.functional.affine`` on PIL images, then
  ``to_tensor`` and ``stack`` (the classic dataset pipeline);
* ``kornia batched``: ``kornia.geometry.transform.warp_affine`` on the float batch (context);
* ``geomrobust batched``: :func:`geomrobust.transforms.affine` with ``(B,)`` parameters;
* ``geomrobust one point``: one transform for the whole batch (the sweeps' case).

Prints images/s for each and, last, ``speedup_vs_torchvision_per_image: X.X``: the smaller of
the two datasets' ratios of the batched path to the per-image path.

Usage: ``python benchmarks/transforms.py [--quick] [--threads N] [--repeats N]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch


def _best_rate(fn: Callable[[], object], n_images: int, repeats: int) -> float:
    fn()  # warm-up: first-touch allocations, lazy imports
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n_images / best


def _bench_dataset(name: str, n: int, c: int, size: int, repeats: int, batch: int) -> dict:
    import kornia
    import torchvision.transforms.functional as TF
    from PIL import Image

    from geomrobust.transforms import AffineSampler, ShiftDistribution, affine

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(n, size, size, c), dtype=np.uint8)
    pil_images = [Image.fromarray(p[..., 0] if c == 1 else p) for p in pixels]
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(255).contiguous()

    sampler = AffineSampler(
        scale=(0.5, 1.5),
        angle_deg=(-30, 30),
        shift=ShiftDistribution.box((-3, 3), (-3, 3)),
        generator=0,
    )
    params = sampler(n)
    scales, angles, shifts = (
        params.scale.tolist(),
        params.angle_deg.tolist(),
        params.shift_px.tolist(),
    )
    p32 = params.to(dtype=torch.float32)

    def torchvision_per_image():
        out = [
            TF.to_tensor(
                TF.affine(
                    im,
                    angle=-a,
                    translate=[tx, ty],
                    scale=s,
                    shear=[0.0, 0.0],
                    interpolation=TF.InterpolationMode.BILINEAR,
                )
            )
            for im, s, a, (tx, ty) in zip(pil_images, scales, angles, shifts, strict=True)
        ]
        return torch.stack(out)

    def kornia_batched():
        outs = []
        for i in range(0, n, batch):
            x = images[i : i + batch]
            centre = torch.tensor([[(size - 1) / 2, (size - 1) / 2]]).expand(x.shape[0], 2)
            scale = p32.scale[i : i + batch, None].expand(-1, 2)
            m = kornia.geometry.transform.get_rotation_matrix2d(
                centre, p32.angle_deg[i : i + batch], scale
            )
            m[:, :, 2] += p32.shift_px[i : i + batch]
            outs.append(
                kornia.geometry.transform.warp_affine(x, m, (size, size), align_corners=False)
            )
        return torch.cat(outs)

    def ours_batched():
        return affine(
            images, scale=params.scale, angle_deg=params.angle_deg, shift_px=params.shift_px
        )

    def ours_one_point():
        return affine(images, scale=0.8, angle_deg=15.0, shift_px=(1.0, -2.0))

    def sampling():
        return sampler(n)

    rates = {
        "torchvision per-image (PIL)": _best_rate(torchvision_per_image, n, repeats),
        "kornia batched": _best_rate(kornia_batched, n, repeats),
        "geomrobust batched": _best_rate(ours_batched, n, repeats),
        "geomrobust one point": _best_rate(ours_one_point, n, repeats),
        "geomrobust sampling only": _best_rate(sampling, n, repeats),
    }
    print(f"\n{name}: {n} images {c}x{size}x{size}, per-image random scale/angle/shift")
    base = rates["torchvision per-image (PIL)"]
    for label, rate in rates.items():
        print(f"  {label:30s} {rate / 1000:9.1f} k img/s   {rate / base:6.1f}x")
    return {
        "batched": rates["geomrobust batched"] / base,
        "one_point": rates["geomrobust one point"] / base,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (under a minute)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (best is kept)")
    parser.add_argument("--batch", type=int, default=1024, help="kornia's batch size")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (2 if args.quick else 5)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, best of {repeats}")
    mnist = _bench_dataset("MNIST-size", 10_000, 1, 28, repeats, args.batch)
    cifar = _bench_dataset("CIFAR-size", 2_000, 3, 32, repeats, args.batch)
    print(
        f"\none point for the whole batch: {mnist['one_point']:.1f}x (MNIST-size), "
        f"{cifar['one_point']:.1f}x (CIFAR-size) vs torchvision per-image"
    )
    print(f"speedup_vs_torchvision_per_image: {min(mnist['batched'], cifar['batched']):.1f}")


if __name__ == "__main__":
    main()
