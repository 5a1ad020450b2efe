"""``geomrobust compare``: two eval results, or two attack results, image by image; or two
models given several training seeds each, across seeds and per seed pair."""

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
            "settings (box, k, grid, seed, canvas padding) and the transform convention. "
            "Several eval results per model (one per training seed: same data and sweep, "
            "checkpoints with the same training settings and different --seed): the mean "
            "accuracy of each model over seeds and the difference A - B with a 95 % "
            "Student-t interval over seed pairs (seed s of A with seed s of B; run-to-run "
            "variation: would it hold if both were trained again?), then each seed pair's "
            "per-image paired tests (test-set sampling variation: would it hold on other "
            "images?). A is the model of the first result given."
        ),
    )
    c.add_argument(
        "results",
        type=Path,
        nargs="+",
        metavar="RESULT.json",
        help="A.json B.json; or each model's results, one per training seed, in any order",
    )
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
    if len(args.results) < 2:
        raise UsageError("compare needs two results (A.json B.json), or several per model")
    attacks = [_schema(p) == ATTACK_SCHEMA for p in args.results]
    if any(attacks):
        if len(args.results) != 2:
            raise UsageError("attack results are compared two at a time: A.json B.json")
        cmp = _attacks(args, attacks)
    elif len(args.results) == 2:
        cmp = _evals(args)
    else:
        cmp = _seeds(args)
    if args.out is not None:
        write_json_atomic(args.out, cmp.to_dict())
        print(f"wrote {args.out}")
    return 0


def _evals(args: argparse.Namespace):
    from geomrobust.robustness import compare_results, load_result
    from geomrobust.transforms import AffineParams

    a, b = (load_result(p) for p in args.results)
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
        for p, is_attack in zip(args.results, attacks, strict=True)
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


def _interval(ci) -> str:
    return "n/a (one seed)" if ci is None else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]"


def _seeds(args: argparse.Namespace):
    from geomrobust.robustness import compare_seeds, load_result, seed_groups

    results = [load_result(p) for p in args.results]
    groups = seed_groups(results)
    if len(groups) != 2:
        names = [f"{results[g[0]].model.name} ({len(g)} result(s))" for g in groups]
        raise UsageError(
            f"the results are of {len(groups)} models, {names}; compare takes two models. "
            "Results are seeds of one model when their checkpoints record the same training "
            "settings and different seeds"
        )
    a, b = ([results[i] for i in g] for g in groups)
    cmp = compare_seeds(a, b, resamples=args.resamples, seed=args.seed)
    seeds = ", ".join(str(s) for s in cmp.seeds)
    print(f"A: {cmp.model_a}\nB: {cmp.model_b}\nseeds: {seeds}; n = {cmp.n} images per result")
    print(
        "\nacross seeds (run-to-run variation): mean accuracy over seeds, A - B with a 95% "
        f"t-interval over the {len(cmp.seeds)} seed pairs"
    )
    head = ("point", "acc A", "acc B", "A - B", "sd", "95% t-interval")
    print(f"{head[0]:<28} {head[1]:>7} {head[2]:>7} {head[3]:>8} {head[4]:>7}  {head[5]}")
    for row in (cmp.clean, *cmp.points, cmp.mean):
        sd = "" if row.sd is None else f"{row.sd:.4f}"
        print(
            f"{row.label:<28} {row.mean_a:7.4f} {row.mean_b:7.4f} {row.difference:+8.4f} "
            f"{sd:>7}  {_interval(row.ci95)}"
        )
    print(
        "\nper seed pair, on the same images (test-set sampling variation): mean accuracy "
        "A - B with its 95% paired bootstrap interval; clean McNemar p"
    )
    for s, c in zip(cmp.seeds, cmp.per_seed, strict=True):
        lo, hi = c.mean_difference_ci95
        print(
            f"seed {s}: A - B {c.mean_accuracy_difference:+.4f} [{lo:+.4f}, {hi:+.4f}]; "
            f"clean {c.clean.difference:+.4f}, McNemar p {c.clean.mcnemar_p:.3g}"
        )
    return cmp
