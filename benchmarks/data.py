"""Streamed image-folder evaluation against torchvision's ImageFolder, in one run.

The benchmark writes its own ``DIR/<class>/<file>.jpg`` folder in a temporary directory:
the shared CIFAR-10 training images (``../shared/data/cifar10-train``, 4,660 of them,
cycled when more are needed) upscaled with Pillow (bicubic) to 224×224 and saved as JPEG
quality 90, an ImageNet-sized stand-in. A small CNN (two seeded random strided convs,
global average pooling, and a linear head ridge-fitted on 320 of the images so that its
predictions vary) then runs the 25-point rotation sweep (-60° to 60°, step 5°) three ways,
all on the same DataLoader workers and batch size, under ``torch.inference_mode()``:

1. the suite: ``load_image_folder`` (listing + content fingerprint, timed on its own), then
   ``evaluate``, which decodes each image once and runs every point on each batch;
2. the plain torchvision script: for each point, ``ImageFolder`` with a transform that
   rotates by that point's angle, a ``DataLoader``, forward and argmax: the folder is read
   and decoded once per point;
3. a hand-written torchvision loop that decodes once: one ``ImageFolder`` pass, and for each
   batch and point ``torchvision.transforms.v2.functional.rotate`` on the batch (skipped at
   0°, as the suite skips the identity), forward.

The suite and ``ImageFolder`` both decode with Pillow, but the suite rotates float images
with its own warp and torchvision with ``rotate``, so predictions may differ on a few
images; the agreement is printed, not asserted. Then the peak RSS of a fresh process that
runs the suite's load + evaluate on 2,000 and on 16,000 images (the first 2,000 of the same
folder, by ``max_images``), its growth above the RSS after the imports (torch alone is
~500 MiB), and the ratio (target <= 1.25). These runs take ``--rss-points`` points of the
sweep around 0° (default 3, quick 1): what the evaluation holds per image does not depend
on the number of points, and all 25 points on 16,000 images take half an hour on two cores.

Prints the timings and, last, ``folder_speedup_vs_torchvision: X.X``: the time of way 2 /
the suite's time (load + evaluate). ``--quick`` times 64 images (one batch: fixed costs
weigh more, so its ratios are lower) and measures the RSS at 250 and 2,000 images, in under
a minute with the JPEGs; a full run takes about 5 minutes on two cores.

Usage: ``python benchmarks/data.py [--quick] [--images N] [--workers N] [--batch-size N]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

ANGLES = tuple(float(a) for a in range(-60, 61, 5))
SIZE = 224
CIFAR_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-train"


def _model(state: Path | None = None) -> nn.Module:
    """The seeded small CNN; with ``state``, the weights saved by the parent run."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 5, stride=4),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    ).eval()
    if state is not None:
        model.load_state_dict(torch.load(state, weights_only=True))
    return model


def _fit_head(model: nn.Module, pixels: np.ndarray, labels: np.ndarray, n: int = 320) -> float:
    """Ridge fit of the last layer on the random conv features of the last ``n`` images.

    Untrained, the CNN predicts one class for every image, and then predictions agree
    whatever the decoder and warp; a fitted head makes them vary. Returns its accuracy on
    the ``n`` images (upscaled with ``F.interpolate``, not as JPEGs).
    """
    images = torch.from_numpy(pixels[-n:]).permute(0, 3, 1, 2).float().div(255)
    y = torch.from_numpy(labels[-n:]).long()
    with torch.no_grad():
        chunks = []
        for s in range(0, n, 64):
            x = nn.functional.interpolate(images[s : s + 64], size=(SIZE, SIZE), mode="bicubic")
            chunks.append(model[:-1](x.clamp(0, 1)))
        f = torch.cat(chunks).double()
        mean, std = f.mean(0), f.std(0).clamp_min(1e-6)
        z = torch.cat([(f - mean) / std, torch.ones(n, 1, dtype=f.dtype)], dim=1)
        target = nn.functional.one_hot(y, 10).double()
        w = torch.linalg.solve(z.T @ z + 1e-2 * n * torch.eye(z.shape[1]), z.T @ target)
        model[-1].weight.copy_((w[:-1] / std[:, None]).T)
        model[-1].bias.copy_(w[-1] - (mean / std) @ w[:-1])
        return float((model[-1](f.float()).argmax(dim=1) == y).float().mean())


def _sweep(angles):
    from geomrobust.transforms import make_sweep

    return make_sweep(angles=angles, name="rotation-60-60-5")


def _cifar(root: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``(N, 32, 32, 3)`` uint8 images, labels and class names of the shared CIFAR-10 rows."""
    from geomrobust.transforms.datasets import CIFAR10_CLASSES, ChecksumWarning, load_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChecksumWarning)  # partial batches: md5 differs
        data = load_dataset("cifar10", split="train", root=root)
    pixels = (data.images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return pixels.numpy(), data.labels.numpy(), CIFAR10_CLASSES


def _make_folder(dest: Path, n: int, pixels, labels, classes) -> list[Path]:
    """Write ``n`` JPEGs ``dest/<class>/<i>.jpg`` (image ``i % len(pixels)``); their paths."""
    from PIL import Image

    for name in classes:
        (dest / name).mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        j = i % len(pixels)
        path = dest / classes[labels[j]] / f"{i:06d}.jpg"
        image = Image.fromarray(pixels[j]).resize((SIZE, SIZE), Image.Resampling.BICUBIC)
        image.save(path, format="JPEG", quality=90)
        paths.append(path)
    return paths


def _link_folder(dest: Path, paths: list[Path]) -> None:
    """``dest`` with the same ``<class>/<file>`` entries as ``paths`` (hard links)."""
    for path in paths:
        target = dest / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            target.write_bytes(path.read_bytes())


class _Rotate:
    """Way 2's per-image transform: torchvision's functional ``rotate`` on the tensor."""

    def __init__(self, angle: float):
        self.angle = angle

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        return F.rotate(image, self.angle, interpolation=InterpolationMode.BILINEAR)


def _suite(root: Path, angles, state: Path, *, batch_size: int, workers: int, max_images=None):
    """``(load s, evaluate s, result)`` of the suite on ``root``."""
    from geomrobust.robustness import EvalOptions, evaluate
    from geomrobust.transforms.datasets import load_image_folder

    model, sweep = _model(state), _sweep(angles)
    start = time.perf_counter()
    folder = load_image_folder(root, max_images=max_images)
    loaded = time.perf_counter()
    options = EvalOptions(batch_size=batch_size, workers=workers)
    result = evaluate(model, folder, sweep, options=options)
    return loaded - start, time.perf_counter() - loaded, result


def _per_point_folders(
    root: Path, angles, state: Path, *, batch_size: int, workers: int
) -> np.ndarray:
    """Way 2: ``(points, N)`` predictions, one ImageFolder + DataLoader pass per point."""
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    model, out = _model(state), []
    with torch.inference_mode():
        for angle in angles:
            transform = v2.Compose(
                [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), _Rotate(angle)]
            )
            dataset = ImageFolder(str(root), transform=transform)
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=batch_size, num_workers=workers
            )
            out.append(torch.cat([model(x).argmax(dim=1) for x, _ in loader]).numpy())
    return np.stack(out)


def _decode_once(root: Path, angles, state: Path, *, batch_size: int, workers: int) -> np.ndarray:
    """Way 3: ``(points, N)`` predictions, one ImageFolder pass, every point per batch."""
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import InterpolationMode, ToTensor
    from torchvision.transforms.v2 import functional as F

    model = _model(state)
    dataset = ImageFolder(str(root), transform=ToTensor())
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    out = np.empty((len(angles), len(dataset)), dtype=np.int64)
    start = 0
    with torch.inference_mode():
        for x, _ in loader:
            stop = start + len(x)
            for k, angle in enumerate(angles):
                xr = F.rotate(x, angle, interpolation=InterpolationMode.BILINEAR) if angle else x
                out[k, start:stop] = model(xr).argmax(dim=1).numpy()
            start = stop
    return out


def _warm_up(model: nn.Module, batch_size: int) -> None:
    """First-touch allocations and oneDNN primitives of the model, rotate and warp."""
    from torchvision.transforms.v2 import functional as F

    from geomrobust.transforms import AffineParams, warp

    x = torch.rand(batch_size, 3, SIZE, SIZE)
    with torch.inference_mode():
        model(x)
        F.rotate(x, 5.0, interpolation=F.InterpolationMode.BILINEAR)
        warp(x, AffineParams(angle_deg=5.0))


def _current_rss_kib() -> int:
    """This process's resident set now (KiB; Linux), 0 where unknown."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _centred(points: int) -> tuple[float, ...]:
    """``points`` consecutive angles of the sweep, starting at or just below 0."""
    first = ANGLES.index(0.0) - (points - 1) // 2
    return ANGLES[first : first + points]


def _rss_child(args) -> int:
    """Load + evaluate in this fresh process; print its peak RSS (KiB) as JSON."""
    # the RSS after the imports is the baseline the growth is measured from
    import geomrobust.robustness
    import geomrobust.transforms.datasets  # noqa: F401

    baseline = _current_rss_kib()
    n_max = args.rss_max_images
    load_s, eval_s, result = _suite(
        args.rss_child,
        _centred(args.rss_points),
        args.rss_state,
        batch_size=args.batch_size,
        workers=args.workers,
        max_images=n_max,
    )
    peak = {
        "self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "imports_kib": baseline,
        "images": result.data.n,
        "load_s": load_s,
        "eval_s": eval_s,
    }
    print(json.dumps(peak))
    return 0


def _rss(root: Path, state: Path, sizes: tuple[int, ...], n_folder: int, args, points: int):
    """Peak RSS records of a fresh child per size, run side by side (each measures only
    its own peak)."""
    procs = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--rss-child", str(root), "--rss-points", str(points)]
        cmd += ["--rss-state", str(state)]
        cmd += ["--workers", str(args.workers), "--batch-size", str(args.batch_size)]
        if n < n_folder:
            cmd += ["--rss-max-images", str(n)]
        procs.append(
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    records = []
    for n, proc in zip(sizes, procs, strict=True):
        out, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"error: the RSS child on {n} images failed:\n{err[-3000:]}")
        records.append(json.loads(out.strip().splitlines()[-1]))
    return records


def _agreement(a: np.ndarray, b: np.ndarray) -> str:
    same = int((a == b).sum())
    return f"{same:,}/{a.size:,} ({same / a.size:.2%})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 images; RSS at 250 and 2,000")
    parser.add_argument("--images", type=int, help="images timed (default 2,000; quick 64)")
    parser.add_argument("--rss-sizes", type=int, nargs=2, metavar=("SMALL", "LARGE"))
    parser.add_argument(
        "--rss-points",
        type=int,
        help="sweep points of the RSS runs, around 0 (default 3; quick 1)",
    )
    parser.add_argument("--workers", type=int, help="DataLoader workers (default: the suite's)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cifar-root", type=Path, default=CIFAR_ROOT)
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rss-max-images", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rss-state", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workers is None:
        from geomrobust.transforms.datasets import default_workers

        args.workers = default_workers()
    if args.rss_child is not None:
        return _rss_child(args)

    started = time.perf_counter()
    n = args.images or (64 if args.quick else 2_000)
    small, large = args.rss_sizes or ((250, 2_000) if args.quick else (2_000, 16_000))
    rss_points = args.rss_points or (1 if args.quick else 3)
    bs, workers = args.batch_size, args.workers
    if not (args.cifar_root / "cifar-10-batches-py").is_dir():
        sys.exit(
            f"skipped: the shared CIFAR-10 images are not at {args.cifar_root} (expected "
            "cifar-10-batches-py/ there; pass --cifar-root DIR); the benchmark makes its "
            "JPEGs from them"
        )
    pixels, labels, classes = _cifar(args.cifar_root)

    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        big, timed = Path(tmp) / "big", Path(tmp) / "timed"
        t0 = time.perf_counter()
        made = max(n, large)
        paths = _make_folder(big, made, pixels, labels, classes)
        _link_folder(timed, paths[:n])
        make_s = time.perf_counter() - t0

        model = _model()
        head_accuracy = _fit_head(model, pixels, labels)
        state = Path(tmp) / "model.pt"
        torch.save(model.state_dict(), state)
        _warm_up(model, bs)
        load_before = os.getloadavg()[0]
        load_s, eval_s, result = _suite(timed, ANGLES, state, batch_size=bs, workers=workers)
        suite_s = load_s + eval_s
        t0 = time.perf_counter()
        plain = _per_point_folders(timed, ANGLES, state, batch_size=bs, workers=workers)
        plain_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        once = _decode_once(timed, ANGLES, state, batch_size=bs, workers=workers)
        once_s = time.perf_counter() - t0

        suite_pred = result.predictions.points
        clean_suite = result.summary.clean_accuracy
        clean_once = float((once[ANGLES.index(0.0)] == result.predictions.labels).mean())
        work = n * len(ANGLES)
        print(
            f"images: {n:,} JPEGs {SIZE}x{SIZE} q90 from CIFAR-10 (made {made:,} in {make_s:.1f} s)"
        )
        print(
            f"sweep: rotation {ANGLES[0]:g}..{ANGLES[-1]:g} step 5 ({len(ANGLES)} points)  "
            f"batch size: {bs}  workers: {workers}  threads: {torch.get_num_threads()}"
        )
        print(
            f"model: small CNN, seeded random convs + ridge-fitted head ({head_accuracy:.1%} "
            f"on its fit images); classes predicted: {len(np.unique(suite_pred))}"
        )
        rows = (
            ("(1) suite load+evaluate", suite_s),
            ("      load (list + hash)", load_s),
            ("      evaluate", eval_s),
            ("(2) ImageFolder per point", plain_s),
            ("(3) ImageFolder decode once", once_s),
        )
        for label, seconds in rows:
            print(f"{label:<29}{seconds:7.2f} s  {work / seconds:8,.0f} images x points/s")
        print(
            f"clean accuracy: suite {clean_suite:.4f}  (3) at 0 deg {clean_once:.4f}  "
            f"difference {clean_once - clean_suite:+.4f}"
        )
        print(
            f"predictions equal to the suite's: (2) {_agreement(plain, suite_pred)}  "
            f"(3) {_agreement(once, suite_pred)}"
        )
        print(f"suite vs (2): {plain_s / suite_s:.2f}x  suite vs (3): {once_s / suite_s:.2f}x")
        print(f"load average (1 min) before / after the timings: {load_before:.1f} / ", end="")
        print(f"{os.getloadavg()[0]:.1f} (other jobs on the machine skew the timings)", flush=True)

        rss_small, rss_large = _rss(big, state, (small, large), made, args, rss_points)

    print(
        f"peak RSS of the evaluating process (suite load + evaluate, {rss_points} sweep "
        "point(s), a fresh process each, side by side):"
    )
    for rss in (rss_small, rss_large):
        print(
            f"  {rss['images']:>6,} images: {rss['self_kib'] / 1024:6.0f} MiB, "
            f"{(rss['self_kib'] - rss['imports_kib']) / 1024:5.0f} MiB above the imports  "
            f"(workers' max {rss['children_kib'] / 1024:.0f} MiB; "
            f"load {rss['load_s']:.2f} s, evaluate {rss['eval_s']:.2f} s)"
        )
    ratio = rss_large["self_kib"] / rss_small["self_kib"]
    print(f"  ratio {large:,} / {small:,} images: {ratio:.3f} (target <= 1.25)")
    print(f"wall time: {time.perf_counter() - started:.1f} s")
    print(f"folder_speedup_vs_torchvision: {plain_s / suite_s:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
