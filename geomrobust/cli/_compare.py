"""``geomrobust compare``: two eval results, or two attack results, image by image."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from geomrobust.cli._errors import UsageError
from geomrobust.cli._options import add_force, add_out, add_seed, check_out

__all__ = ["add_parser"]

_MODE_NAMES = {"clean": "clean", "random": "random", "worst_of_k": "worst-of-k", "grid": "grid"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser(
        "compare",
        help="compare two eval results, or two attack results, on the same data",
        description=(
            "Two eval results: per-point accuracy differences (A - B) with exact McNemar "
            "p-values, a paired bootstrap 95 % interval of the mean-accuracy difference and, "
            "when both sweeps are one ordered sequence, the flip rate FR = FP_A / FP_B, from "
            "the saved per-image predictions; both must share the data fingerprint, the sweep "
            "and the transform convention. Two attack results (geomrobust attack): per mode "
            "(clean, random, worst-of-k, grid) the accuracies, their difference and an exact "
            "McNemar p-value on the per-image outcomes; both must share the data, the attack "
            "settings (box, k, grid, seed, canvas padding) and the transform convention."
        ),
    )
    c.add_argument("a", type=Path, metavar="A.json")
    c.add_argument("b", type=Path, metavar="B.json")
    c.add_argument(
        "--resamples",
        type=int,
        default=2000,
        help="bootstrap resamples of an eval comparison (default 2000)",
    )
    add_seed(c, what="the bootstrap of an eval comparison")
    add_out(c, metavar="CMP.json", help="also write the comparison as JSON", required=False)
    add_force(c)
    c.set_defaults(handler=run)


def _schema(path: Path) -> str | None:
    """The file's schema tag, or ``None`` when it cannot be read (the loader says why)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data.get("schema") if isinstance(data, dict) else None


def run(args: argparse.Namespace) -> int:
    from geomrobust.robustness import ATTACK_SCHEMA
    from geomrobust.robustness._io import write_json_atomic

    if args.out is not None:
        check_out(args.out, args.force, example="comparison.json")
    if args.resamples < 1:
        raise UsageError(f"--resamples must be >= 1; got {args.resamples}")
    attacks = [_schema(p) == ATTACK_SCHEMA for p in (args.a, args.b)]
    cmp = _attacks(args, attacks) if any(attacks) else _evals(args)
    if args.out is not None:
        write_json_atomic(args.out, cmp.to_dict())
        print(f"wrote {args.out}")
    return 0


def _evals(args: argparse.Namespace):
    from geomrobust.robustness import compare_results, load_result
    from geomrobust.transforms import AffineParams

    a, b = load_result(args.a), load_result(args.b)
    cmp = compare_results(a, b, resamples=args.resamples, seed=args.seed)
    print(f"A: {cmp.model_a}\nB: {cmp.model_b}\nn = {cmp.n} images")
    head = ("point", "acc A", "acc B", "A - B", "A only", "B only", "McNemar p")
    print(
        f"{head[0]:<28} "
        + " ".join(f"{h:>{w}}" for h, w in zip(head[1:], (7, 7, 8, 7, 7, 10), strict=True))
    )
    rows = [("clean", cmp.clean)]
    rows += [(AffineParams(p.scale, p.angle_deg, p.shift_px).label(), p) for p in cmp.points]
    for label, p in rows:
        print(
            f"{label:<28} {p.accuracy_a:7.4f} {p.accuracy_b:7.4f} {p.difference:+8.4f} "
            f"{p.only_a:7d} {p.only_b:7d} {p.mcnemar_p:10.3g}"
        )
    lo, hi = cmp.mean_difference_ci95
    print(
        f"mean accuracy: A {cmp.mean_accuracy_a:.4f}  B {cmp.mean_accuracy_b:.4f}  "
        f"A - B {cmp.mean_accuracy_difference:+.4f}  95% paired bootstrap CI [{lo:+.4f}, {hi:+.4f}]"
    )
    if cmp.flip_probability_a is not None and cmp.flip_probability_b is not None:
        fr = "undefined (B never flips)" if cmp.flip_rate is None else f"{cmp.flip_rate:.4f}"
        print(
            f"flip probability: A {cmp.flip_probability_a:.4f}  B {cmp.flip_probability_b:.4f}  "
            f"flip rate FR = FP_A / FP_B {fr}"
        )
    return cmp


def _attacks(args: argparse.Namespace, attacks: list[bool]):
    from geomrobust.robustness import load_attack_result, load_result
    from geomrobust.robustness._compare import compare_attack_results

    # An eval result among them is read without its predictions: the comparison refuses the
    # mix whatever they hold.
    a, b = (
        load_attack_result(p) if is_attack else load_result(p, with_predictions=False)
        for p, is_attack in zip((args.a, args.b), attacks, strict=True)
    )
    cmp = compare_attack_results(a, b)
    s = cmp.attack
    box = s["box"] or {}
    shift = box.get("max_shift_px") or [0, 0]
    grid = " x ".join(str(v) for v in s["grid"] or ())
    print(f"A: {cmp.model_a}\nB: {cmp.model_b}\nn = {cmp.n} images")
    print(
        f"attack: {s.get('preset') or 'custom'}; box ±{box.get('max_angle_deg', 0):g} deg, "
        f"±{shift[0]:g} px x, ±{shift[1]:g} px y; k = {s['k']}; grid {grid}; seed {s['seed']}"
    )
    head = ("mode", "acc A", "acc B", "A - B", "A only", "B only", "McNemar p")
    print(
        f"{head[0]:<12} "
        + " ".join(f"{h:>{w}}" for h, w in zip(head[1:], (7, 7, 8, 7, 7, 10), strict=True))
    )
    for m in cmp.modes:
        print(
            f"{_MODE_NAMES[m.mode]:<12} {m.accuracy_a:7.4f} {m.accuracy_b:7.4f} "
            f"{m.difference:+8.4f} {m.only_a:7d} {m.only_b:7d} {m.mcnemar_p:10.3g}"
        )
    return cmp
