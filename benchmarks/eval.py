"""The evaluation engine against bare forward passes of the same images, in one run.

The scaled-MNIST sweep (11 scales, 0.5 to 1.5) on 10,000 images through ``mnist-cnn``
(``ref:mnist-cnn`` if the reference checkpoint exists, else an untrained one): the engine
(``geomrobust.robustness.evaluate``: warp, normalise, forward, argmax, metrics) against the same
number of bare forward passes of the unwarped images in the same batches.

Three loops are timed in rotating order, best of ``--repeats``, so load from other jobs hits
them alike: the bare eager loop (``model(x)``, as a user writes it), the bare loop on the
engine's CPU fast path (``ModelForward`` with the default options: exact ``max_pool2d``), and
the engine with its default options. The engine's first run also makes ``malloc`` keep freed
memory (``keep_freed_memory``, process-wide), so every loop after it has that too; one bare
eager loop is timed before it, with glibc's defaults, for reference.

Also times the engine with ``graph="freeze"`` (exact), ``graph="onednn"`` (not exact) and, with
``--options``, ``amp="bf16"``, ``channels_last`` and ``compile``, each with how many of its
predictions differ from the default's (exact: eager's bits) and by how much probabilities
move; and a 1024³ float32 matmul, for the sweep's FLOPs at the machine's matmul rate measured
in the same run.

Prints the timings, ``engine_vs_eager: X.XX`` (the engine's default path, best time, over the
bare eager loop's best), ``ceiling_ratio: X.X`` (the engine's best time over the sweep's FLOPs
divided by the measured matmul rate) and, last, ``engine_overhead: X.XX``: engine time / bare
fast-path time, the median over the rotations (target <= 1.15).
``--quick`` runs 600 images in well under a minute.

Usage: ``python benchmarks/eval.py [--quick] [--images N] [--threads N] [--repeats N] [--options]``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _data(n: int, data_root: Path | None):
    from geomrobust.transforms.datasets import (
        DataFingerprint,
        ImageDataset,
        array_sha256,
        load_dataset,
    )

    if data_root is not None:
        source = load_dataset("mnist", split="test", root=data_root)
    else:
        source = load_dataset("digits", split="train")
    reps = -(-n // len(source))
    images = source.images.repeat(reps, 1, 1, 1)[:n].contiguous()
    labels = source.labels.repeat(reps)[:n].contiguous()
    fp = DataFingerprint(
        dataset=source.name,
        split=f"{source.split}-tiled-{n}",
        n_images=n,
        images_sha256=array_sha256((images.numpy() * 255).round().astype(np.uint8)),
        labels_sha256=array_sha256(labels.numpy()),
    )
    return ImageDataset(source.name, fp.split, images, labels, source.classes, fp)


def _model(data):
    from geomrobust.models import build_model, list_refs
    from geomrobust.robustness import load_for_eval

    if "mnist-cnn" in {ref.name for ref in list_refs()}:
        loaded = load_for_eval("ref:mnist-cnn", data=data)
        return loaded.model, loaded.record.mean, loaded.record.std, "ref:mnist-cnn"
    torch.manual_seed(0)
    model = build_model("mnist-cnn").eval()
    return model, (0.1307,), (0.3081,), "mnist-cnn (untrained: ref:mnist-cnn not found)"


def _sweep_flops(work: int) -> float:
    """FLOPs of ``work`` forward images of ``mnist-cnn`` (``get_model_info``: 2 per MAC)."""
    from geomrobust.models import get_model_info

    return float(get_model_info("mnist-cnn").flops) * work


def _matmul_rate(size: int = 1024, repeats: int = 5) -> float:
    """Best float32 matmul rate of this machine now, FLOP/s (``2 n³`` per product)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def _r(values: list[float]) -> list[float]:
    return [round(v, 2) for v in values]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="600 images (under a minute)")
    parser.add_argument("--images", type=int, help="number of images (default 10,000)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, help="timed runs of each (default 3, quick 4)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--data-root", type=Path, help="MNIST root (default: tiled digits)")
    parser.add_argument(
        "--options", action="store_true", help="also time amp=bf16, channels_last and compile"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from geomrobust.robustness import EvalOptions, evaluate
    from geomrobust.robustness._forward import ForwardOptions, ModelForward
    from geomrobust.transforms import get_sweep

    n = args.images or (600 if args.quick else 10_000)
    repeats = args.repeats or (4 if args.quick else 3)
    bs = args.batch_size
    data = _data(n, args.data_root)
    model, mean, std, name = _model(data)
    sweep = get_sweep("scale")
    options = EvalOptions(mean=mean, std=std, batch_size=bs)
    images = data.images
    fast_forward = ModelForward(model, torch.device("cpu"), ForwardOptions())

    def bare_loop(forward) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                for _ in sweep.points:
                    for s in range(0, n, bs):
                        forward(images[s : s + bs])

        return run

    bare, bare_fast = bare_loop(model), bare_loop(fast_forward)

    def engine(opts: EvalOptions = options) -> Any:
        return evaluate(model, data, sweep, options=opts)

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    # glibc's malloc defaults: before the engine (the CPU fast path) changes them
    with torch.inference_mode():
        model(images[:bs])
    glibc_s = timed(bare)
    # Warm-up on a slice (first-touch allocations, lazy imports, oneDNN primitives).
    evaluate(model, _data(min(n, 2 * bs), args.data_root), sweep, options=options)
    bare_fast()

    # Rotations: each loop goes first, second and third in turn; other jobs on the machine
    # slow the loops of a rotation alike, so the median of the rotations' ratios is robust.
    loops = {"bare": bare, "bare_fast": bare_fast, "engine": engine}
    times: dict[str, list[float]] = {k: [] for k in loops}
    order = list(loops)
    for r in range(repeats):
        for key in order[r % 3 :] + order[: r % 3]:
            times[key].append(timed(loops[key]))
    b, e = min(times["bare"]), min(times["engine"])
    overhead = [x / y for x, y in zip(times["engine"], times["bare_fast"], strict=True)]
    work = n * len(sweep)
    print(f"model: {name}")
    print(f"data: {data.name} {n} images x {len(sweep)} scales = {work:,} forward images")
    print(f"threads: {torch.get_num_threads()}  batch size: {bs}  repeats: {repeats}")
    print(f"bare eager, glibc malloc defaults: {glibc_s:.2f} s ({work / glibc_s:,.0f} img/s)")
    for key, label in (
        ("bare", "bare eager"),
        ("bare_fast", "bare fast path"),
        ("engine", "engine"),
    ):
        best = min(times[key])
        print(f"{label + ':':16s} best {best:.2f} s ({work / best:,.0f} img/s)  {_r(times[key])}")
    reference = engine()
    variants = [("graph=freeze", {"graph": "freeze"}), ("graph=onednn", {"graph": "onednn"})]
    if args.options:
        variants += [("amp=bf16", {"amp": "bf16"}), ("channels_last", {"channels_last": True})]
        variants += [("compile", {"compile": True})]
    for label, extra in variants:
        fast = EvalOptions(mean=mean, std=std, batch_size=bs, **extra)
        first = time.perf_counter()
        got = engine(fast)
        first = time.perf_counter() - first
        g = min(first, timed(lambda fast=fast: engine(fast)))
        flips = int((got.predictions.points != reference.predictions.points).sum())
        moved = float(np.nanmax(np.abs(got.predictions.probs - reference.predictions.probs)))
        print(
            f"engine {label}: best {g:.2f} s ({work / g:,.0f} img/s, first run {first:.1f} s), "
            f"{e / g:.2f}x default; {flips} of {reference.predictions.points.size:,} "
            f"predictions differ, max |prob diff| {moved:.1e}; ran {got.run['numerics']}"
        )
    flops, rate = _sweep_flops(work), _matmul_rate()
    print(f"sweep: {flops / 1e9:,.1f} GFLOP; matmul rate {rate / 1e9:,.0f} GFLOP/s this run")
    print(f"engine_vs_eager: {e / b:.2f}")
    print(f"ceiling_ratio: {e / (flops / rate):.1f}")
    print(f"engine_overhead: {float(np.median(overhead)):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
