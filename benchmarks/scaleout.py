"""One sweep on one process against the same sweep on two ``torchrun`` ranks, end to end.

``ref:mnist-cnn`` on the embedded ``digits`` split under the ``scale-rotation`` sweep (275
points) by the CLI, as a user runs it: once as ``python -m geomrobust eval --threads 2``
and once as ``python -m torch.distributed.run --nproc-per-node 2 -m geomrobust eval
--threads 1``, so both use two threads in all. The wall times include process start-up
(imports, loading the checkpoint and data), which the second pays in parallel ranks; the
engine's own time (``run.elapsed_s``) is printed too. Runs alternate, best of
``--repeats``, and the two results must be equal (points, summary and predictions).

Prints the timings and, last, ``scaleout_speedup_2: X.XX``: single-process wall time / two-
rank wall time. ``--quick`` uses the ``rotation`` sweep (25 points) and one repeat.

Usage: ``python benchmarks/scaleout.py [--quick] [--sweep S] [--split S] [--repeats N]``
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_LAUNCH_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_PORT")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _LAUNCH_VARS}


def _run(cmd: list[str], out: Path) -> tuple[float, dict]:
    """Wall time of ``cmd`` and the result it wrote."""
    for path in (out, out.with_name(out.stem + ".predictions.npz")):
        path.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, json.loads(out.read_text())


def _same(a: Path, b: Path) -> bool:
    ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
    if any(ja[k] != jb[k] for k in ja if k != "run"):
        return False
    with (
        np.load(a.with_name(a.stem + ".predictions.npz")) as na,
        np.load(b.with_name(b.stem + ".predictions.npz")) as nb,
    ):
        return all(np.array_equal(na[k], nb[k]) for k in na.files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="rotation sweep, one repeat")
    parser.add_argument("--sweep", help="sweep preset (default scale-rotation; quick rotation)")
    parser.add_argument("--split", default="test", help="digits split (default test)")
    parser.add_argument("--checkpoint", default="ref:mnist-cnn")
    parser.add_argument("--repeats", type=int, help="timed runs of each (default 2, quick 1)")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    sweep = args.sweep or ("rotation" if args.quick else "scale-rotation")
    repeats = args.repeats or (1 if args.quick else 2)

    with tempfile.TemporaryDirectory(prefix="scaleout-") as tmp:
        one, two = Path(tmp) / "one.json", Path(tmp) / "two.json"
        common = [
            "--checkpoint",
            args.checkpoint,
            "--dataset",
            "digits",
            "--split",
            args.split,
            "--sweep",
            sweep,
            "--batch-size",
            str(args.batch_size),
            "--device",
            "cpu",
            "--no-progress",
            "--force",
        ]
        single = [sys.executable, "-m", "geomrobust", "eval", *common, "--threads", "2"]
        single += ["--out", str(one)]

        def ranks() -> list[str]:
            return [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nproc-per-node",
                "2",
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                str(_free_port()),
                "-m",
                "geomrobust",
                "eval",
                *common,
                "--threads",
                "1",
                "--out",
                str(two),
            ]

        walls: dict[int, list[float]] = {1: [], 2: []}
        engine: dict[int, list[float]] = {1: [], 2: []}
        for r in range(repeats):
            order = (1, 2) if r % 2 == 0 else (2, 1)
            for n in order:
                wall, result = _run(single, one) if n == 1 else _run(ranks(), two)
                walls[n].append(wall)
                engine[n].append(float(result["run"]["elapsed_s"]))
        identical = _same(one, two)
        points = len(json.loads(one.read_text())["points"])
        images = json.loads(one.read_text())["data"]["n"]

    w1, w2 = min(walls[1]), min(walls[2])
    e1, e2 = min(engine[1]), min(engine[2])
    print(f"checkpoint: {args.checkpoint}  data: digits {args.split} ({images} images)")
    print(f"sweep: {sweep} ({points} points)  batch size: {args.batch_size}  repeats: {repeats}")
    print(f"cores: {os.cpu_count()}  threads: 2 (1 process) vs 1 per rank (2 ranks)")
    for n, label in ((1, "1 process"), (2, "2 ranks")):
        runs = [round(w, 2) for w in walls[n]]
        best = f"wall best {min(walls[n]):.2f} s  engine {min(engine[n]):.2f} s"
        print(f"{label + ':':<11}{best}  runs {runs}")
    print(f"engine-only speedup: {e1 / e2:.2f}")
    print(f"results identical: {'yes' if identical else 'NO'}")
    print(f"scaleout_speedup_2: {w1 / w2:.2f}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
