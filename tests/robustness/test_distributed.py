"""``eval`` and ``eval-pairs`` under ``torchrun``: two CPU ranks (gloo) give exactly the
single-process result; a rank that fails fails the run with its error and writes no result;
``--resume`` reuses the shards that finished. Also the pure parts: launch variables, shard
plans and their assignment, pair ranges, partial pieces.

Each launch starts three Python processes (the launcher and two ranks), a few seconds each.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

from geomrobust.cli import main as run_cli
from geomrobust.robustness import EvalInputError
from geomrobust.robustness._distributed import (
    Launch,
    RanksFailed,
    _Status,
    assign_shards,
    distributed_shards,
    launch_from_env,
    pair_ranges,
    rank_device,
    shard_groups,
    threads_per_rank,
)
from geomrobust.robustness._io import PartialStore

needs_gloo = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo"
)

# A model factory for `--model flaky_model:build`: the reference mnist-cnn weights, but the
# rank named by FLAKY_RANK returns 3 logits instead of 10 (bad input only that rank sees).
FLAKY = """
import os

from geomrobust.models import build_model


def build():
    net = build_model("mnist-cnn")
    bad = os.environ.get("FLAKY_RANK")
    if bad is not None and os.environ.get("RANK") == bad:
        plain = type(net).forward
        net.forward = lambda x: plain(net, x)[:, :3]
    return net
"""

# 8 points + the identity = 9 rows, in image blocks with all rows each.
ROWS_SWEEP = ("--scales", "0.6,0.8,1.2,1.4", "--angles", "0,20")


@pytest.fixture(scope="module")
def hook(tmp_path_factory) -> Path:
    """A folder with the reference mnist-cnn as a plain state dict and ``flaky_model.py``."""
    from geomrobust.models import load_checkpoint
    from geomrobust.robustness._checkpoints import resolve_checkpoint_path

    folder = tmp_path_factory.mktemp("dist")
    net, _ = load_checkpoint(resolve_checkpoint_path("ref:mnist-cnn"))
    torch.save(net.state_dict(), folder / "cnn.pt")
    (folder / "flaky_model.py").write_text(FLAKY)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args: str, hook: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    environ["PYTHONPATH"] = os.pathsep.join([str(hook), environ.get("PYTHONPATH", "")])
    environ.update(env)
    cmd = [
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
        *args,
    ]
    return subprocess.run(cmd, env=environ, capture_output=True, text=True, timeout=300)


def _eval_args(hook: Path, out: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "--checkpoint",
        str(hook / "cnn.pt"),
        "--model",
        "flaky_model:build",
        "--dataset",
        "digits",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def _single(args: list[str], hook: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(hook))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert run_cli(args) == 0


def _assert_same_result(a: Path, b: Path) -> dict:
    """Every field of two result files but ``run`` (device, timing, ranks) is equal, and so
    is every array of their predictions files; returns ``b``'s ``run``."""
    ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
    assert set(ja) == set(jb)
    for key in ja:
        if key != "run":
            assert ja[key] == jb[key], key
    pa, pb = a.with_name(a.stem + ".predictions.npz"), b.with_name(b.stem + ".predictions.npz")
    with np.load(pa) as na, np.load(pb) as nb:
        assert sorted(na.files) == sorted(nb.files)
        for name in na.files:
            # NaN marks "no failing grid point" in an attack's grid_fail_params: equal there.
            nan = np.issubdtype(na[name].dtype, np.floating)
            assert np.array_equal(na[name], nb[name], equal_nan=nan), name
    return jb["run"]


@needs_gloo
def test_two_ranks_give_the_single_process_result(hook, tmp_path, monkeypatch):
    # 8 image blocks wanted: 359 / 8 rounded up to a batch of 64 -> 6 blocks × 3 rows.
    sweep = ("--scales", "0.8,1.1", "--batch-size", "64")
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    _single(_eval_args(hook, one, *sweep), hook, monkeypatch)
    proc = _torchrun(*_eval_args(hook, two, *sweep), hook=hook)
    assert proc.returncode == 0, proc.stderr
    run = _assert_same_result(one, two)
    assert run["world_size"] == 2
    assert run["backend"] == "gloo"
    assert run["devices"] == ["cpu", "cpu"]
    assert run["threads"] == threads_per_rank(Launch(0, 2, 0, 2), None)
    assert (run["shards"], run["shards_computed"], run["shards_resumed"]) == (18, 18, 0)
    assert (run["rows_computed"], run["rows_resumed"]) == (3, 0)
    # Only rank 0 prints and logs.
    assert proc.stdout.count("wrote ") == 1
    assert proc.stderr.count("assumed: the model gets images in [0, 1]") == 1
    assert not (tmp_path / "two.json.partial").exists()
    summary = json.loads(two.read_text())["summary"]
    assert 0 < summary["consistency"] < 1  # predictions vary with the point: a real check


@needs_gloo
def test_two_ranks_on_an_image_folder_give_the_single_process_result(hook, tmp_path, monkeypatch):
    # Grey PNGs of the first 150 digits test images, one folder per class; the ranks split the
    # images (blocks of 32, all rows each) and decode each image once.
    from _image_folders import write_folder

    from geomrobust.transforms.datasets import DIGITS_CLASSES, load_dataset

    digits = load_dataset("digits", split="test").head(150)
    root = tmp_path / "val"
    write_folder(root, digits.images, digits.labels.tolist(), DIGITS_CLASSES)
    folder = ("--dataset", "imagefolder", "--data-root", str(root), "--workers", "1")
    sweep = ("--scales", "0.8,1.2", "--angles", "0,30", "--batch-size", "32")

    def args(out: Path) -> list[str]:
        plain = _eval_args(hook, out, *sweep)
        at = plain.index("--dataset")
        return [*plain[:at], *folder, *plain[at + 2 :]]

    one, two = tmp_path / "one.json", tmp_path / "two.json"
    _single(args(one), hook, monkeypatch)
    proc = _torchrun(*args(two), hook=hook)
    assert proc.returncode == 0, proc.stderr
    run = _assert_same_result(one, two)
    assert run["world_size"] == 2
    assert run["shards"] == 5 * 5  # 5 image blocks of 32 × (4 points + the identity)
    result = json.loads(two.read_text())
    assert result["data"]["dataset"] == "imagefolder"
    assert result["data"]["n"] == 150


@needs_gloo
def test_an_attack_on_two_ranks_gives_the_single_process_result(hook, tmp_path, monkeypatch):
    def args(out: Path) -> list[str]:
        plain = _eval_args(hook, out, "--max-images", "100", "--batch-size", "16")
        return ["attack", *plain[1:], "--grid", "5,3,3", "--k", "3", "--seed", "4"]

    one, two = tmp_path / "one.json", tmp_path / "two.json"
    _single(args(one), hook, monkeypatch)
    proc = _torchrun(*args(two), hook=hook)
    assert proc.returncode == 0, proc.stderr
    run = _assert_same_result(one, two)
    assert run["world_size"] == 2
    assert run["shards"] == 7 * 6  # 7 blocks of 16 images (8 wanted) × 6 outcomes
    assert json.loads(two.read_text())["schema"] == "geomrobust.attack/1"


@needs_gloo
def test_eval_pairs_two_ranks_give_the_single_process_result(hook, tmp_path, monkeypatch):
    def args(out: Path) -> list[str]:
        return [
            "eval-pairs",
            "--checkpoint",
            "ref:pairs-mnist",
            "--dataset",
            "digits",
            "--pairs",
            "300",
            "--seed",
            "5",
            "--batch-size",
            "64",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--no-progress",
        ]

    one, two = tmp_path / "one.json", tmp_path / "two.json"
    _single(args(one), hook, monkeypatch)
    proc = _torchrun(*args(two), hook=hook)
    assert proc.returncode == 0, proc.stderr
    run = _assert_same_result(one, two)
    assert (run["world_size"], run["devices"]) == (2, ["cpu", "cpu"])
    assert proc.stdout.count("pair accuracy") == 1


@pytest.fixture(scope="module")
def failed(hook, tmp_path_factory):
    """A 2-rank eval whose rank 1 gets a model with 3 outputs: ``(process, out, partial
    files right after the failure)``."""
    out = tmp_path_factory.mktemp("failed") / "r.json"
    proc = _torchrun(*_eval_args(hook, out, *ROWS_SWEEP), hook=hook, FLAKY_RANK="1")
    partial = out.with_name("r.json.partial")
    files = sorted(str(p.relative_to(partial)) for p in partial.rglob("*.npy"))
    return proc, out, files


@needs_gloo
def test_a_failing_rank_fails_the_run_with_its_error(failed):
    proc, out, files = failed
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: rank 1 of 2 failed: the model predicts 3 classes but the dataset has 10; use a "
        "model trained on this dataset"
    ]
    assert "exitcode  : 2" in proc.stderr  # the CLI's status for bad input
    assert not out.exists()
    assert not out.with_name("r.predictions.npz").exists()
    # Rank 0 finished its image block (images 0..255, all 9 rows); rank 1 none.
    assert files == [f"rank-00000/point-{i:05d}.0000000-0000256.npy" for i in range(9)]


@needs_gloo
def test_resume_reuses_the_finished_shards(failed, hook, tmp_path, monkeypatch):
    _, out, _ = failed
    ref = tmp_path / "ref.json"
    _single(_eval_args(hook, ref, *ROWS_SWEEP), hook, monkeypatch)
    # The same partial resumed in one process: its one block (all 359 images) is not covered
    # by the ranks' pieces, so it is computed; the same result.
    other = tmp_path / "other.json"
    shutil.copytree(out.with_name("r.json.partial"), tmp_path / "other.json.partial")
    _single(_eval_args(hook, other, *ROWS_SWEEP, "--resume"), hook, monkeypatch)
    assert json.loads(other.read_text())["run"]["shards_resumed"] == 0
    _assert_same_result(ref, other)
    # Resumed with 2 ranks: rank 0's block is reused, the other block is computed.
    proc = _torchrun(*_eval_args(hook, out, *ROWS_SWEEP, "--resume"), hook=hook)
    assert proc.returncode == 0, proc.stderr
    run = _assert_same_result(ref, out)
    assert (run["shards"], run["shards_resumed"], run["shards_computed"]) == (18, 9, 9)
    assert not out.with_name("r.json.partial").exists()
    # Rerun with --resume once the run has finished: every rank stops, the result is kept.
    before = out.read_bytes()
    proc = _torchrun(*_eval_args(hook, out, *ROWS_SWEEP, "--resume"), hook=hook)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("is already complete; nothing to resume") == 1
    assert out.read_bytes() == before


# --- the pure parts -----------------------------------------------------------------------


def test_launch_from_env():
    assert launch_from_env({}) is None
    assert launch_from_env({"WORLD_SIZE": "1", "RANK": "0"}) is None
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert launch_from_env(env) == Launch(rank=3, world_size=4, local_rank=1, local_world_size=2)
    assert launch_from_env({"WORLD_SIZE": "2", "RANK": "1"}) == Launch(1, 2, 1, 2)
    with pytest.raises(EvalInputError, match=r"RANK='x' in the environment: torchrun sets"):
        launch_from_env({"WORLD_SIZE": "2", "RANK": "x"})
    with pytest.raises(EvalInputError, match=r"inconsistent launch: WORLD_SIZE=2, RANK=2"):
        launch_from_env({"WORLD_SIZE": "2", "RANK": "2"})


def test_threads_and_device_per_rank():
    launch = Launch(1, 2, 1, 2)
    assert threads_per_rank(launch, 3) == 3
    assert threads_per_rank(launch, None) == max(1, len(os.sched_getaffinity(0)) // 2)
    assert threads_per_rank(Launch(1, 64, 1, 64), None) == 1
    assert rank_device("cpu", launch) == "cpu"
    with pytest.raises(EvalInputError, match=r"each rank uses the GPU cuda:LOCAL_RANK; use device"):
        rank_device("cuda:1", launch)
    with pytest.raises(EvalInputError, match=r"^device must be auto, cpu, cuda or cuda:N"):
        rank_device("tpu", launch)
    if not torch.cuda.is_available():
        assert rank_device("auto", launch) == "cpu"
        with pytest.raises(EvalInputError, match=r"no CUDA device is available here"):
            rank_device("cuda", launch)


def _covers_once(shards, n_rows: int, n_images: int) -> bool:
    seen = np.zeros((n_rows, n_images), dtype=int)
    for s in shards:
        seen[s.row, s.start : s.stop] += 1
    return bool((seen == 1).all())


@pytest.mark.parametrize(
    ("rows", "world", "batch", "per_row"),
    [(9, 2, 256, 1), (3, 2, 64, 3), (1, 4, 10, 12), (2, 8, 1000, 1)],
)
def test_distributed_shards(rows, world, batch, per_row):
    shards = distributed_shards(rows, 359, world_size=world, batch_size=batch)
    assert _covers_once(shards, rows, 359)
    assert len(shards) == rows * per_row
    assert all(s.start % batch == 0 for s in shards)  # batches as in one process


def test_assign_shards_balances_images_and_skips_finished():
    assert assign_shards([10] * 5, [], 2) == [0, 1, 0, 1, 0]
    assert assign_shards([10, 10, 10, 10], [0, 1], 2) == [-1, -1, 0, 1]
    assert assign_shards([30, 10, 10, 10], [], 2) == [0, 1, 1, 1]
    owner = assign_shards([7] * 100, list(range(0, 100, 3)), 3)
    assert [owner.count(r) for r in range(3)] == [22, 22, 22]


def test_streamed_shards_keep_an_image_block_on_one_rank():
    shards = distributed_shards(3, 100, world_size=2, batch_size=10, streamed=True)
    # 8 blocks wanted -> 13 images, rounded up to 20: 5 blocks, all 3 rows each, image-major
    assert [(s.row, s.start, s.stop) for s in shards[:4]] == [
        (0, 0, 20),
        (1, 0, 20),
        (2, 0, 20),
        (0, 20, 40),
    ]
    groups = shard_groups(shards, streamed=True)
    assert groups == [i // 3 for i in range(15)]
    owner = assign_shards([s.stop - s.start for s in shards], [], 2, groups=groups)
    assert owner == [r for r in (0, 1, 0, 1, 0) for _ in range(3)]
    # a finished shard leaves the rest of its block together
    owner = assign_shards([s.stop - s.start for s in shards], [0], 2, groups=groups)
    assert owner[:6] == [-1, 0, 0, 1, 1, 1]
    assert shard_groups(shards, streamed=False) == list(range(15))


def test_pair_ranges():
    assert pair_ranges(300, world_size=2, batch_size=64) == [(0, 192), (192, 300)]
    assert pair_ranges(10, world_size=4, batch_size=4) == [(0, 4), (4, 8), (8, 10), (10, 10)]
    ranges = pair_ranges(1000, world_size=7, batch_size=32)
    assert ranges[0][0] == 0
    assert ranges[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert all(start % 32 == 0 for start, _ in ranges)
    batches = [-(-(b - a) // 32) for a, b in ranges]
    assert max(batches) - min(batches) <= 1


def test_ranks_failed_names_the_ranks():
    bad = _Status(ok=False, bad_input=True, message="no such file")
    boom = _Status(ok=False, message="RuntimeError: boom")
    exc = RanksFailed([(1, bad), (3, bad)], 4)
    assert str(exc) == "ranks 1, 3 of 4 failed: no such file"
    assert exc.bad_input
    exc = RanksFailed([(0, boom), (2, bad)], 4)
    assert str(exc) == "rank 0 of 4 failed: RuntimeError: boom; rank 2 of 4 failed: no such file"
    assert not exc.bad_input


def test_partial_pieces_of_every_rank_are_resumed(tmp_path):
    key = {"run": 1}
    folder = tmp_path / "r.json.partial"
    a = PartialStore(folder, key, 10, part="rank-00000")
    b = PartialStore(folder, key, 10, part="rank-00001")
    a.start(resume=False)
    b.start(resume=False)
    a.save_piece(0, 0, 4, np.arange(4))
    b.save_piece(0, 4, 10, np.arange(4, 10))
    b.save_piece(1, 0, 10, np.full(10, 7))
    assert sorted(p.name for p in folder.rglob("*.npy")) == [
        "point-00000.0000000-0000004.npy",
        "point-00000.0000004-0000010.npy",
        "point-00001.npy",
    ]
    # One process resumes what two ranks finished: rows assembled from pieces.
    single = PartialStore(folder, key, 10)
    done = single.start(resume=True)
    assert sorted(done) == [0, 1]
    assert done[0].tolist() == list(range(10))
    assert single.lookup(0, 2, 6).tolist() == [2, 3, 4, 5]
    assert single.lookup(2, 0, 10) is None
    assert (folder / "rank-00001" / "point-00001.npy").exists()  # kept until success
    # Another run's partial is refused, naming the folder.
    with pytest.raises(ValueError, match=r"r\.json\.partial were computed with a different run"):
        PartialStore(folder, {"run": 2}, 10, part="rank-00000").start(resume=True)
    shutil.rmtree(folder)
    a.start(resume=False)
    a.save_piece(3, 0, 10, np.arange(10))
    with pytest.raises(ValueError, match=r"rank-00000 were computed with a different run"):
        PartialStore(folder, {"run": 2}, 10).start(resume=True)
