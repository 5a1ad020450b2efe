"""Hostile and broken inputs: every case ends in one ``error:`` line and an exit status, never
a traceback; memory bombs are refused before they allocate (the tests that would allocate
run in a subprocess under ``ulimit -v``)."""

from __future__ import annotations

import errno
import gzip
import json
import os
import pickle
import re
import resource
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _image_folders import random_folder
from safetensors import safe_open
from safetensors.torch import save_file

from geomrobust.cli import main as run_cli
from geomrobust.models import build_model, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def _stderr(capsys) -> list[str]:
    err = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in line for line in err), err
    return err


def _error(capsys) -> str:
    err = _stderr(capsys)
    assert err, "nothing on stderr"
    assert err[-1].startswith("error: "), err
    return err[-1]


# -- the backstop -------------------------------------------------------------------------


def _failing(monkeypatch, exc: BaseException) -> None:
    import geomrobust.cli._models as models_cmd

    def boom(args):
        raise exc

    monkeypatch.setattr(models_cmd, "run_models", boom)


def test_an_unexpected_error_is_one_line_and_exit_1(monkeypatch, capsys):
    _failing(monkeypatch, RuntimeError("something\nbroke"))
    assert run_cli(["models"]) == 1
    err = _stderr(capsys)
    assert err == [
        "error: unexpected RuntimeError: something broke",
        "rerun with -v for the traceback",
    ]


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_prints_the_traceback(monkeypatch, capsys, where):
    _failing(monkeypatch, RuntimeError("broke"))
    argv = ["-v", "models"] if where == "before" else ["models", "-v"]
    assert run_cli(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1] == "error: unexpected RuntimeError: broke"


def test_a_full_disk_names_the_file(monkeypatch, capsys):
    _failing(monkeypatch, OSError(errno.ENOSPC, "No space left on device", "/data/r.json"))
    assert run_cli(["models"]) == 1
    err = _stderr(capsys)
    assert err[0] == (
        "error: no space left on the device writing /data/r.json; free some space and rerun"
    )


# -- files we cannot read or write ------------------------------------------------------

EVAL = ["eval", "--checkpoint", "ref:mnist-cnn", "--dataset", "digits", "--max-images", "40"]
EVAL += ["--scales", "0.9,1", "--no-progress"]


def test_an_unreadable_checkpoint(tmp_path, monkeypatch, capsys):
    ckpt = tmp_path / "m.safetensors"
    save_checkpoint(ckpt, build_model("mnist-cnn"))
    real_open = Path.open

    def no_read(self, *args, **kwargs):  # as chmod 000 does for a user without the rights
        if self == ckpt:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", no_read)
    argv = [
        "eval",
        "--checkpoint",
        str(ckpt),
        "--dataset",
        "digits",
        "--sweep",
        "scale",
        "--out",
        str(tmp_path / "r.json"),
    ]
    assert run_cli(argv) == 2
    assert _error(capsys) == f"error: cannot read {ckpt}: permission denied"


def test_out_in_a_folder_we_cannot_write(tmp_path, monkeypatch, capsys):
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", denied)
    out = tmp_path / "ro" / "r.json"
    assert run_cli([*EVAL, "--out", str(out)]) == 2
    assert _error(capsys) == (
        f"error: --out: cannot write in {tmp_path}: permission denied; choose a folder you can "
        "write to"
    )
    assert not (tmp_path / "ro").exists()  # refused before any work


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_out_in_a_read_only_folder(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert run_cli([*EVAL, "--out", str(folder / "r.json")]) == 2
        assert "cannot write in" in _error(capsys)
    finally:
        folder.chmod(0o700)


def test_a_full_disk_leaves_no_half_result_and_resume_works(tmp_path, monkeypatch, capsys):
    import geomrobust.robustness._io as io

    out = tmp_path / "r.json"
    real_fsync = os.fsync

    def full_on_the_json(fd):  # the partial pieces and predictions go through, the JSON not
        if os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1].startswith(".r.json."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(io.os, "fsync", full_on_the_json)
    assert run_cli([*EVAL, "--out", str(out)]) == 1
    err = _stderr(capsys)
    assert err[-2] == f"error: no space left on the device writing {out}; free some space and rerun"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert "r.json" not in left
    assert "r.predictions.npz" not in left
    assert not [n for n in left if n.endswith(".tmp")]
    monkeypatch.setattr(io.os, "fsync", real_fsync)  # space freed
    assert run_cli([*EVAL, "--out", str(out), "--resume"]) == 0
    assert json.loads(out.read_text())["schema"] == "geomrobust.eval/1"


# -- parameters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--scales", "0:1e999999999:1", r"--scales: '0:1e999999999:1' gives more than 100000"),
        ("--scales", "1:2:1e-999999999", r"--scales: '1:2:1e-999999999' gives more than 100000"),
        (
            "--angles",
            "1e308",
            r"angle_deg must be a finite angle in degrees with \|angle\| < 1e\+06",
        ),
        (
            "--shifts",
            "1e308,1e308;",
            r"shift_px must be finite pixel shifts with \|shift\| < 1e\+06",
        ),
        ("--fill", "2", r"fill is a constant in image space.*got \[2.0\]"),
    ],
)
def test_absurd_parameters(tmp_path, capsys, flag, value, message):
    argv = ["eval", "--checkpoint", "ref:mnist-cnn", "--dataset", "digits", "--max-images", "8"]
    argv += [f"{flag}={value}", "--out", str(tmp_path / "r.json"), "--no-progress"]
    if flag == "--fill":
        argv += ["--scales", "0.9,1"]
    assert run_cli(argv) == 2

    assert re.search(message, _error(capsys))
    assert not (tmp_path / "r.json").exists()


def test_a_billion_pairs_needs_yes(tmp_path, capsys):
    argv = ["eval-pairs", "--checkpoint", "ref:pairs-mnist", "--dataset", "digits"]
    argv += ["--pairs", "1000000000", "--out", str(tmp_path / "p.json")]
    assert run_cli(argv) == 2
    assert _error(capsys) == (
        "error: --pairs 1,000,000,000 means 1,000,000,000 forward passes of two images each, "
        "hours of work or more; above 10,000,000 pairs pass --yes to run it anyway"
    )


def test_nan_weights_warn_once_and_are_recorded(tmp_path, capsys, caplog):
    net = build_model("mnist-cnn")
    with torch.no_grad():
        net.fc.weight.fill_(float("nan"))
    ckpt = tmp_path / "nan.safetensors"
    save_checkpoint(ckpt, net)
    out = tmp_path / "r.json"
    argv = ["eval", "--checkpoint", str(ckpt), "--dataset", "digits", "--max-images", "40"]
    argv += ["--scales", "0.9,1", "--batch-size", "8", "--out", str(out), "--no-progress"]
    assert run_cli(argv) == 0
    warnings = [r.getMessage() for r in caplog.records if "non-finite logits" in r.getMessage()]
    assert len(warnings) == 1
    assert json.loads(out.read_text())["run"]["nonfinite_logits"] is True


# -- memory bombs in the files we read: refused before allocating, under a 4 GB limit ----------

LIMIT_BYTES = 4 * 1024**3  # torch imports in ~3 GB of address space; every bomb wants far more


def _limited_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``geomrobust ARGS`` in a subprocess whose address space is capped (``ulimit -v``)."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))

    cmd = [sys.executable, "-m", "geomrobust", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, preexec_fn=cap, cwd=cwd)


def _last_error(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr.strip().splitlines()[-1]


def _with_metadata(src: str, dst: Path, **changes: object) -> Path:
    """A copy of the reference ``src`` whose geomrobust metadata has ``changes`` (raw JSON
    text for a ``str`` value)."""
    from geomrobust.models import resolve_ref

    path = resolve_ref(src)
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    for key, value in changes.items():
        metadata[f"geomrobust.{key}"] = value if isinstance(value, str) else json.dumps(value)
    save_file(tensors, str(dst), metadata=metadata)
    return dst


def test_the_limit_lets_a_normal_eval_run(tmp_path):
    out = tmp_path / "r.json"
    proc = _limited_cli(*EVAL, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.exists()


@pytest.mark.parametrize(
    ("ref", "args", "shape"),
    [
        (
            "mnist-cnn",
            {"in_channels": 100_000_000, "num_classes": 10, "input_size": [28, 28]},
            r"conv1.weight: file \(32, 1, 3, 3\) vs model \(32, 100000000, 3, 3\)",
        ),
        (
            "pairs-mnist",
            {
                "in_channels": 1,
                "num_classes": 7,
                "input_size": [28, 28],
                "encoder": "cifar-small",
                "hidden": 2_000_000_000,
            },
            r"file \(128, \d+\) vs model \(2000000000, \d+\)",
        ),
        (
            "cifar-small",
            {"in_channels": 3, "num_classes": 10, "input_size": [3_000_000, 3_000_000]},
            r"fc1.weight: file \(\d+, \d+\) vs model",
        ),
    ],
)
def test_absurd_model_args_are_refused_before_allocating(tmp_path, ref, args, shape):
    ckpt = _with_metadata(f"ref:{ref}", tmp_path / "bomb.safetensors", model_args=args)
    if ref == "pairs-mnist":
        argv = ["eval-pairs", "--checkpoint", str(ckpt), "--dataset", "digits", "--pairs", "20"]
    else:
        data = ["--dataset", "digits"]
        if ref.startswith("cifar"):  # a folder: the checkpoint is read before the images
            folder = random_folder(tmp_path / "imgs", ["airplane", "automobile"], 1, size=(32, 32))
            data = ["--dataset", "imagefolder", "--data-root", str(folder)]
        argv = ["eval", "--checkpoint", str(ckpt), *data, "--sweep", "scale"]
    proc = _limited_cli(*argv, "--out", str(tmp_path / "r.json"))
    assert proc.returncode == 2, proc.stderr
    err = _last_error(proc)
    assert err.startswith(f"error: {ckpt}: its metadata field model_args "), err
    assert "disagrees with the tensors the file holds (the file is the truth)" in err
    assert re.search(shape, err), err


def test_deeply_nested_metadata_is_refused(tmp_path):
    bomb = "[" * 100_000 + "]" * 100_000
    ckpt = _with_metadata("ref:mnist-cnn", tmp_path / "deep.safetensors", training=bomb)
    proc = _limited_cli(*EVAL[:2], str(ckpt), *EVAL[3:], "--out", str(tmp_path / "r.json"))
    assert proc.returncode == 2, proc.stderr
    err = _last_error(proc)
    assert err.startswith(f"error: {ckpt}: bad geomrobust metadata: metadata entry ")
    assert "'geomrobust.training' is not valid JSON (the document is nested too deeply" in err


def test_a_deeply_nested_result_is_refused_by_report(tmp_path):
    result = tmp_path / "r.json"
    result.write_text(
        '{"schema": "geomrobust.eval/1", "summary": ' + "[" * 100_000 + "]" * 100_000 + "}"
    )
    proc = _limited_cli("report", str(result), "--out", str(tmp_path / "rep"), "--no-progress")
    assert proc.returncode == 2, proc.stderr
    err = _last_error(proc)
    assert err.startswith(
        f"error: {result} is not valid JSON (field 'summary' is nested too deeply"
    )


def _mnist_test_split(root: Path, images_gz: bytes, n: int) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(images_gz)
    labels = struct.pack(">II", 0x801, n) + bytes(n)
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    return root


def _eval_mnist_test(root: Path, out: Path) -> subprocess.CompletedProcess:
    argv = [*EVAL[:4], "mnist", "--data-root", str(root), "--split", "test", "--sweep", "scale"]
    return _limited_cli(*argv, "--out", str(out))


def test_a_gzip_bomb_posing_as_mnist_is_not_inflated(tmp_path):
    # 100 gzip members of 16 MiB of zeros: 1.6 GB inflated (more than the limit leaves), from
    # 1.6 MB on disk; the header says 20 images, as a real file would.
    n = 20
    zeros = gzip.compress(bytes(16 * 2**20))
    bomb = gzip.compress(struct.pack(">IIII", 0x803, n, 28, 28) + bytes(16 * 2**20)) + zeros * 99
    root = _mnist_test_split(tmp_path / "data", bomb, n)
    proc = _eval_mnist_test(root, tmp_path / "r.json")
    assert proc.returncode == 2, proc.stderr
    assert "decompresses to more than the 20 × 28 × 28 = 15,680 bytes its header promises" in (
        _last_error(proc)
    )


def test_an_implausible_idx_header_is_refused(tmp_path):
    n = 8_400_000  # 6.6 GB of images declared in a file of a few hundred bytes
    images = gzip.compress(struct.pack(">IIII", 0x803, n, 28, 28) + bytes(100))
    root = _mnist_test_split(tmp_path / "data", images, n)
    proc = _eval_mnist_test(root, tmp_path / "r.json")
    assert proc.returncode == 2, proc.stderr
    assert re.search(
        r"declares 8400000 × 28 × 28 = 6,585,600,000 bytes of data, more than \d+ gzip",
        _last_error(proc),
    )


def _cifar_test_batch(root: Path, n: int) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    data = np.zeros((n, 3072), dtype=np.uint8)
    batch = {"data": data, "labels": [0] * n, "batch_label": "testing batch 1 of 1"}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    return root


def test_a_cifar_batch_of_a_million_rows_is_refused_unread(tmp_path):
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    with open(folder / "test_batch", "wb") as f:  # sparse: 3 GB long, nothing written
        f.write(b"\x80\x02}q\x00")
        f.truncate(1_000_000 * 3_100)
    proc = _limited_cli(
        *EVAL[:2],
        "ref:cifar-small",
        "--dataset",
        "cifar10",
        "--data-root",
        str(tmp_path / "data"),
        "--sweep",
        "scale",
        "--out",
        str(tmp_path / "r.json"),
    )
    assert proc.returncode == 2, proc.stderr
    assert re.search(
        r"test_batch' holds 3,100,000,000 bytes \(room for about 968,750 rows\), more than the "
        r"10,000 rows a CIFAR-10 batch may have here .* set GEOMROBUST_CIFAR_MAX_ROWS",
        _last_error(proc),
    )


def test_the_cifar_row_limit_is_an_option(tmp_path, monkeypatch, capsys):
    root = _cifar_test_batch(tmp_path / "data", 12)
    argv = [*EVAL[:2], "ref:cifar-small", "--dataset", "cifar10", "--data-root", str(root)]
    argv += ["--scales", "1", "--out", str(tmp_path / "r.json"), "--no-progress"]
    monkeypatch.setenv("GEOMROBUST_CIFAR_MAX_ROWS", "10")
    assert run_cli(argv) == 2
    assert "holds 12 rows, more than the 10 rows a CIFAR-10 batch may have here" in _error(capsys)
    monkeypatch.setenv("GEOMROBUST_CIFAR_MAX_ROWS", "12")
    assert run_cli(argv) == 0


# -- make-dataset --verify on a malformed manifest -------------------------------------------


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: {**m, "files": list(m["files"])}, r"'files' must be an object of file name"),
        (
            lambda m: {**m, "files": {k: "abc" for k in m["files"]}},
            r"'files.images.npy' must be an object with a 'sha256' string; got str 'abc'",
        ),
        (
            lambda m: {**m, "files": {"../../etc/passwd": {"sha256": "0"}}},
            r"'files' entry '../../etc/passwd' must be a file name inside the folder",
        ),
        (lambda m: {**m, "n_images": "many"}, r"'n_images' must be an integer; got str 'many'"),
        (lambda m: [m], r"the manifest must be a JSON object; got list"),
    ],
)
def test_verify_names_the_bad_manifest_field(tmp_path, capsys, edit, message):
    out = tmp_path / "set"
    argv = ["make-dataset", "scaled-mnist", "--dataset", "digits", "--out", str(out)]
    assert run_cli(argv) == 0
    capsys.readouterr()
    manifest = out / "manifest.json"
    manifest.write_text(json.dumps(edit(json.loads(manifest.read_text()))))
    assert run_cli(["make-dataset", "scaled-mnist", "--verify", "--out", str(out)]) == 2
    assert re.search(message, _error(capsys))


# -- corrupt state on --resume ---------------------------------------------------------------


def _interrupted_eval(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """An eval whose result could not be written (a full disk): its partial stays behind."""
    import geomrobust.robustness._io as io

    out = tmp_path / "r.json"
    real_fsync = os.fsync

    def full_on_the_json(fd):
        if os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1].startswith(".r.json."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(io.os, "fsync", full_on_the_json)
    assert run_cli([*EVAL, "--out", str(out)]) == 1
    monkeypatch.setattr(io.os, "fsync", real_fsync)
    partial = tmp_path / "r.json.partial"
    assert sorted(p.name for p in partial.glob("*.npy"))
    return out, partial


@pytest.mark.parametrize("bad", [99, -2, 2**62])
def test_corrupt_partial_pieces_are_named_and_recomputed(
    tmp_path, monkeypatch, capsys, caplog, bad
):
    reference = tmp_path / "ref" / "r.json"
    assert run_cli([*EVAL, "--out", str(reference)]) == 0
    out, partial = _interrupted_eval(tmp_path, monkeypatch)
    piece = sorted(partial.glob("point-*.npy"))[0]
    values = np.load(piece)
    values[0, 0] = bad
    np.save(piece, values)
    capsys.readouterr()
    assert run_cli([*EVAL, "--out", str(out), "--resume"]) == 0
    warned = [r.getMessage() for r in caplog.records if "corrupt partial file" in r.getMessage()]
    assert len(warned) == 1
    assert str(piece) in warned[0]
    assert "outside [0, 10)" in warned[0]
    got, want = json.loads(out.read_text()), json.loads(reference.read_text())
    assert got["summary"] == want["summary"]
    assert got["points"] == want["points"]


class _RunsACommand:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def _interrupted_training(tmp_path: Path, monkeypatch) -> tuple[list[str], Path]:
    import geomrobust.models._train_loop as loop

    out = tmp_path / "m.safetensors"
    argv = ["train", "--model", "mnist-cnn", "--dataset", "digits", "--epochs", "2"]
    argv += ["--max-images", "96", "--out", str(out), "--no-progress", "--threads", "1"]

    def stop(path, history):  # after the first epoch's state is saved
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_write_log", stop)
    assert run_cli(argv) == 130
    monkeypatch.undo()
    state = loop.state_path(out)
    assert state.is_file()
    return argv, state


def _truncate(state: Path) -> None:
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])


def _blocked_global(state: Path) -> None:
    saved = torch.load(state, weights_only=True)
    torch.save({**saved, "settings": _RunsACommand()}, state)


def _no_settings(state: Path) -> None:
    saved = torch.load(state, weights_only=True)
    del saved["settings"]
    torch.save(saved, state)


def _bad_shapes(state: Path) -> None:
    saved = torch.load(state, weights_only=True)
    saved["model"]["conv1.weight"] = torch.zeros(3, 3)
    torch.save(saved, state)


@pytest.mark.parametrize(
    ("corrupt", "what"),
    [
        (_truncate, r"RuntimeError"),
        (_blocked_global, r"UnpicklingError: Weights only load failed"),
        (_no_settings, r"KeyError: 'settings'"),
        (_bad_shapes, r"RuntimeError: Error\(s\) in loading state_dict"),
    ],
)
def test_a_broken_training_state_says_to_start_over(tmp_path, monkeypatch, capsys, corrupt, what):
    argv, state = _interrupted_training(tmp_path, monkeypatch)
    corrupt(state)
    capsys.readouterr()
    assert run_cli([*argv, "--resume"]) == 2
    err = _error(capsys)
    assert err.startswith(
        f"error: cannot resume from {state}: it is truncated, corrupt or not a training state ("
    )
    assert re.search(what, err), err
    assert err.endswith("; pass --force to start over")
    assert run_cli([*argv, "--force"]) == 0  # the fix the message gives works
