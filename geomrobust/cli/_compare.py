"""``geomrobust compare``: two eval results on the same data and sweep, image by image."""

from __future__ import annotations

import argparse
from pathlib import Path

from geomrobust.cli._errors import UsageError
from geomrobust.cli._options import add_force, add_out, add_seed, check_out

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser(
        "compare",
        help="compare two eval results on the same data and sweep",
        description=(
            "Per-point accuracy differences (A - B) with exact McNemar p-values, and a paired "
            "bootstrap 95 % interval of the mean-accuracy difference, from the saved per-image "
            "predictions. Both results must share the data fingerprint, the sweep and the "
            "transform convention."
        ),
    )
    c.add_argument("a", type=Path, metavar="A.json")
    c.add_argument("b", type=Path, metavar="B.json")
    c.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    add_seed(c, what="the bootstrap")
    add_out(c, metavar="CMP.json", help="also write the comparison as JSON", required=False)
    add_force(c)
    c.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from geomrobust.robustness import compare_results, load_result
    from geomrobust.robustness._io import write_json_atomic
    from geomrobust.transforms import AffineParams

    if args.out is not None:
        check_out(args.out, args.force, example="comparison.json")
    if args.resamples < 1:
        raise UsageError(f"--resamples must be >= 1; got {args.resamples}")
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
    if args.out is not None:
        write_json_atomic(args.out, cmp.to_dict())
        print(f"wrote {args.out}")
    return 0
