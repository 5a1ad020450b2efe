"""A/B of ``geomrobust train`` against a plain PyTorch loop written from the same recipe.

The recipe (the published scaled-MNIST protocol): Adam, ``StepLR(step 1, gamma)`` stepped
per epoch, batch 64, a reshuffle every epoch, mean cross-entropy, default PyTorch init,
``(x - mean) / std`` after any augmentation, and the epoch with the best accuracy on the
held-out validation split kept. The plain loop below is that recipe in a few dozen lines of
PyTorch, sharing nothing with ``geomrobust.models``' training code but the architecture
builder, the data loader and the validation split (so both sides select on, and are scored
on, the same held-out images).

Two checks, in one run:

* **pinned**: the plain script with the suite's seed. ``geomrobust train --seed S`` seeds as
  a plain script does (``torch.manual_seed(S)``, build the model, shuffle with the stream
  that follows), so the initial weights and the batch order are the same and every step is
  the same computation: the kept weights must be equal bit for bit
  (``pinned_max_abs_diff: 0``). Anything else means the training loop drifted from its
  recipe (loss reduction, optimiser or scheduler steps, train/eval mode, selection, seeding).
* **unpinned**: the plain script from other seeds (``seed + --plain-seed-offset``), several
  seeds each side. The validation accuracy (clean, and the mean over the 11-point scale
  sweep under the suite's default protocol and under the published one: nearest, fill at
  the mean) is compared as mean ± standard deviation over seeds: what a user sees, with
  independent draws on both sides.

Prints the figures and, last, ``train_ab_clean_gap: X.XX``: the suite's mean clean
validation accuracy minus the plain loop's, in points (negative: the suite is weaker).

Usage: ``python benchmarks/train_ab.py [--quick] [--model mnist-cnn] [--seeds 0 1 2]
[--augment scale=0.5:1.5] [--data-root ../shared/data/mnist-train] [--threads 1]``
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geomrobust.models import (
    TrainConfig,
    build_model,
    load_checkpoint,
    parse_augment,
    train_classifier,
)
from geomrobust.models._train_config import channel_stats, split_indices
from geomrobust.robustness import EvalOptions, evaluate
from geomrobust.transforms import affine
from geomrobust.transforms.datasets import ImageDataset, load_dataset

_SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist-train"


def plain_loop(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    val_images: Tensor,
    val_labels: Tensor,
    *,
    mean: float | tuple[float, ...],
    std: float | tuple[float, ...],
    epochs: int,
    gamma: float,
    batch_size: int = 64,
    lr: float = 1e-3,
    scale_range: tuple[float, float] | None = None,
) -> tuple[nn.Module, int]:
    """The recipe, written plainly. Returns the model holding the best epoch's weights.

    Each epoch draws its batch order with ``torch.randperm`` from the global generator;
    ``scale_range`` adds scale augmentation drawn from it too.
    """
    m = torch.as_tensor(mean, dtype=images.dtype).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=images.dtype).view(1, -1, 1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=gamma)
    best_acc, best_epoch, best_state = -1.0, 0, None
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(images))
        for start in range(0, len(images), batch_size):
            idx = perm[start : start + batch_size]
            x = images[idx]
            if scale_range is not None:
                low, high = scale_range
                x = affine(x, scale=torch.empty(len(idx)).uniform_(low, high))
            loss = F.cross_entropy(model((x - m) / s), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            preds = torch.cat([model((v - m) / s).argmax(1) for v in val_images.split(500)])
        acc = (preds == val_labels).double().mean().item()
        if acc > best_acc:
            best_acc, best_epoch, best_state = acc, epoch + 1, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return model.eval(), best_epoch


def _val_figures(model: nn.Module, val: ImageDataset, mean, std) -> dict[str, float]:
    """Clean and scale-sweep mean validation accuracy (%), both protocols, via the engine."""
    out = {}
    for label, interpolation, fill in (
        ("default", "bilinear", None),
        ("published", "nearest", "mean"),
    ):
        options = EvalOptions(
            mean=tuple(mean), std=tuple(std), interpolation=interpolation, fill=fill
        )
        summary = evaluate(model, val, "scale", options=options).summary
        out["clean"] = 100 * summary.clean_accuracy
        out[f"mean_{label}"] = 100 * summary.mean_accuracy
    return out


def _subset(ds: ImageDataset, idx: Tensor) -> ImageDataset:
    fp = type(ds.fingerprint)(**{**ds.fingerprint.__dict__, "n_images": len(idx)})
    return ImageDataset(ds.name, ds.split, ds.images[idx], ds.labels[idx], ds.classes, fp)


def _suite(config: TrainConfig, ds: ImageDataset, workdir: Path) -> tuple[nn.Module, dict]:
    out = workdir / f"suite-{config.model}-s{config.seed}.safetensors"
    result = train_classifier(config, ds, out=out, force=True, progress=False)
    model, meta = load_checkpoint(out)
    return model.eval(), {"best_epoch": result.best_epoch, "mean": meta.mean, "std": meta.std}


def _plain(args, ds, seed, x, y, val, mean, std, scale_range) -> tuple[nn.Module, int]:
    """The plain script: ``torch.manual_seed(seed)``, build the model, train."""
    torch.manual_seed(seed)
    c, h, w = ds.image_shape
    model = build_model(args.model, in_channels=c, num_classes=ds.num_classes, input_size=(h, w))
    return plain_loop(
        model,
        x,
        y,
        val.images,
        val.labels,
        mean=mean,
        std=std,
        epochs=args.epochs,
        gamma=args.gamma,
        scale_range=scale_range,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="digits, 2 epochs, seed 0")
    parser.add_argument("--model", default="mnist-cnn")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--plain-seed-offset",
        type=int,
        default=100,
        help="the unpinned plain runs use seed + this (independent draws; default 100)",
    )
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--gamma", type=float, default=0.7)
    parser.add_argument("--augment", default=None, help="scale=LOW:HIGH, as for train")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-root", default=str(_SHARED_MNIST))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--side", choices=("both", "suite", "plain"), default="both")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.dataset, args.data_root, args.epochs, args.seeds = "digits", None, 2, [0]
    ds = load_dataset(args.dataset, split="train", root=args.data_root)
    augment = parse_augment(args.augment) if args.augment else None
    scale_range = None if augment is None else tuple(augment.to_dict()["scale"])
    print(
        f"{args.model} on {args.dataset} ({len(ds)} training images), {args.epochs} epochs, "
        f"gamma {args.gamma}, augment {args.augment}, seeds {args.seeds} (plain: + "
        f"{args.plain_seed_offset}), {torch.get_num_threads()} thread(s)"
    )
    workdir = Path(tempfile.mkdtemp(prefix="train_ab_"))
    figures: dict[str, list[dict[str, float]]] = {"suite": [], "plain": []}
    pinned_diff = math.nan
    for seed in args.seeds:
        config = TrainConfig(
            model=args.model,
            epochs=args.epochs,
            lr=1e-3,
            step_gamma=args.gamma,
            seed=seed,
            augment=augment,
        )
        train_idx, val_idx = split_indices(len(ds), val_fraction=0.1, seed=seed)
        val = _subset(ds, val_idx)
        x, y = ds.images[train_idx], ds.labels[train_idx]
        mean, std = channel_stats(x)
        if args.side in ("both", "suite"):
            start = time.perf_counter()
            suite_model, info = _suite(config, ds, workdir)
            fig = _val_figures(suite_model, val, info["mean"], info["std"])
            fig["best_epoch"], fig["time_s"] = info["best_epoch"], time.perf_counter() - start
            figures["suite"].append(fig)
            print(f"  seed {seed} suite: {_fmt(fig)}", flush=True)
        if args.side == "both" and seed == args.seeds[0] and augment is None:
            # The same seed: the plain script's initial weights and batch order are the suite's.
            pinned, _ = _plain(args, ds, seed, x, y, val, mean, std, None)
            pinned_diff = max(
                float((a - b).abs().max())
                for a, b in zip(
                    pinned.state_dict().values(), suite_model.state_dict().values(), strict=True
                )
            )
            print(f"  seed {seed} plain script, same seed: max |weight diff| {pinned_diff:g}")
        if args.side in ("both", "plain"):
            start = time.perf_counter()
            plain_seed = seed + args.plain_seed_offset
            model, best_epoch = _plain(args, ds, plain_seed, x, y, val, mean, std, scale_range)
            fig = _val_figures(model, val, mean, std)
            fig["best_epoch"], fig["time_s"] = best_epoch, time.perf_counter() - start
            figures["plain"].append(fig)
            print(f"  seed {seed} plain (seed {plain_seed}): {_fmt(fig)}", flush=True)
    print("\nvalidation accuracy (%), mean ± sd over seeds:")
    for side, rows in figures.items():
        if rows:
            cells = ", ".join(
                f"{k} {_mean_sd([r[k] for r in rows])}"
                for k in ("clean", "mean_default", "mean_published")
            )
            print(f"  {side:6s} {cells}")
    print(f"pinned_max_abs_diff: {pinned_diff:g}")
    if figures["suite"] and figures["plain"]:
        gap = statistics.mean(r["clean"] for r in figures["suite"]) - statistics.mean(
            r["clean"] for r in figures["plain"]
        )
        print(f"train_ab_clean_gap: {gap:.2f}")


def _fmt(fig: dict[str, float]) -> str:
    return (
        f"clean {fig['clean']:.2f}, sweep mean {fig['mean_default']:.2f} (default) / "
        f"{fig['mean_published']:.2f} (published), best epoch {fig['best_epoch']}, "
        f"{fig['time_s']:.0f} s"
    )


def _mean_sd(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


if __name__ == "__main__":
    main()
