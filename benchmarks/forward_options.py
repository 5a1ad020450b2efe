"""Images per second of the engine with each way of calling the model, side by side.

``ref:cifar-small`` at 32 px and ``torchvision:resnet50`` at 224 px (random weights), on the
images of one clean pass (``evaluate`` with the identity sweep: copy to the device,
normalise, forward, argmax, metrics), with the default options (eager, exact) and then with
each option of ``eval``/``attack``/``eval-pairs``: ``--graph freeze``, ``--graph onednn``
(CPU), ``--amp bf16``, ``--amp fp16`` (CUDA), ``--channels-last``, ``--compile``. Each is
timed after a warm-up pass, best of ``--repeats``, without the seconds each evaluation spends
tracing or compiling the model and checking it against eager (``run.build_s``, printed
apart), and says whether its predictions equal the default's.

Runs on CUDA when there is a GPU (``--device`` to choose), else on the CPU. Prints a table
and, last, ``best_option_speedup_resnet50: X.X``: the fastest option's images/s over the
default's for ResNet-50 (an option that fell back to eager counts as the default).
``--quick`` times a few images per model, without ``--compile`` on CPU (minutes of
compiling there).

Usage: ``python benchmarks/forward_options.py [--quick] [--device D] [--images N]``
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _random_data(n: int, shape: tuple[int, int, int], names: tuple[str, ...]):
    from geomrobust.transforms.datasets import DataFingerprint, ImageDataset, array_sha256

    gen = torch.Generator().manual_seed(0)
    images = torch.rand(n, *shape, generator=gen)
    labels = torch.arange(n) % len(names)
    fp = DataFingerprint(
        "random", "bench", n, array_sha256(images.numpy()), array_sha256(labels.numpy())
    )
    return ImageDataset("random", "bench", images, labels, names, fp)


def _models(device: torch.device, images: dict[str, int]):
    """``(name, model, data, mean, std)`` of each benchmarked model."""
    import torchvision

    from geomrobust.robustness import load_for_eval

    data = _random_data(images["cifar"], (3, 32, 32), CIFAR10)
    loaded = load_for_eval("ref:cifar-small", data=data, device=str(device))
    yield "ref:cifar-small", loaded.model, data, loaded.record.mean, loaded.record.std
    torch.manual_seed(0)
    resnet = torchvision.models.resnet50(weights=None).eval().to(device)
    data = _random_data(images["resnet"], (3, 224, 224), tuple(str(i) for i in range(1000)))
    yield "resnet50", resnet, data, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few images per model")
    parser.add_argument("--device", help="cuda or cpu (default: cuda if available)")
    parser.add_argument("--images", type=int, help="ResNet-50 images (default 512 CUDA, 64 CPU)")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes of each")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from geomrobust.robustness import EvalOptions, evaluate
    from geomrobust.transforms import make_sweep

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    n_resnet = args.images or (16 if args.quick else (512 if cuda else 64))
    images = {"resnet": n_resnet, "cifar": 256 if args.quick else (10_000 if cuda else 1_000)}
    variants: list[tuple[str, dict]] = [
        ("default (eager)", {}),
        ("--graph freeze", {"graph": "freeze"}),
        ("--amp bf16", {"amp": "bf16"}),
        ("--channels-last", {"channels_last": True}),
    ]
    variants += (
        [("--amp fp16", {"amp": "fp16"})] if cuda else [("--graph onednn", {"graph": "onednn"})]
    )
    if cuda or not args.quick:
        variants.append(("--compile", {"compile": True}))
    sweep = make_sweep(scales=(1.0,))

    gpu = torch.cuda.get_device_name(device) if cuda else "cpu"
    print(f"device: {gpu}  threads: {torch.get_num_threads()}  torch {torch.__version__}")
    print(f"{'model':16s} {'option':18s} {'img/s':>9s} {'vs default':>10s}  predictions")
    speedup = 1.0
    for name, model, data, mean, std in _models(device, images):
        batch = 256 if name == "ref:cifar-small" else (128 if cuda else 32)
        base_rate, base = None, None
        for label, extra in variants:
            options = EvalOptions(mean=mean, std=std, batch_size=batch, **extra)
            try:
                got = evaluate(model, data, sweep, options=options)  # warm-up, compiles
            except Exception as exc:  # an option this device lacks (e.g. fp16 autocast on CPU)
                print(f"{name:16s} {label:18s} {'-':>9s} {'-':>10s}  {type(exc).__name__}")
                continue
            best, build = float("inf"), got.run["build_s"]
            for _ in range(args.repeats):
                if cuda:
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                r = evaluate(model, data, sweep, options=options)
                if cuda:
                    torch.cuda.synchronize(device)
                # each evaluation traces or compiles afresh: count that apart
                best = min(best, time.perf_counter() - start - r.run["build_s"])
                build = min(build, r.run["build_s"])
            rate = len(data) / best
            fell_back = got.run["graph"] != extra.get("graph", "eager") or (
                got.run["compile"] != extra.get("compile", False)
            )
            ran = "fell back to eager" if fell_back else got.run["numerics"]
            if base is None:
                base_rate, base = rate, got
                same = "reference"
            else:
                equal = np.array_equal(got.predictions.clean, base.predictions.clean)
                same = f"{'equal' if equal else 'DIFFER'} (ran: {ran})"
                if name == "resnet50":
                    speedup = max(speedup, 1.0 if fell_back else rate / base_rate)
            built = f"; build {build:.1f} s" if build >= 0.05 else ""
            print(f"{name:16s} {label:18s} {rate:9,.0f} {rate / base_rate:9.2f}x  {same}{built}")
    print(f"best_option_speedup_resnet50: {speedup:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
