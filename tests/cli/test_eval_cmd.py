"""``eval``, ``eval-pairs`` and ``compare`` through their parser: files written, exit
statuses, and one ``error: ...`` line for every kind of bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from geomrobust.cli import build_parser
from geomrobust.cli import main as run_cli
from geomrobust.cli._options import resolve_device
from geomrobust.robustness import EvalResult, load_result
from geomrobust.robustness._engine import _Runner

SCALES = "0.8,1"


def _eval(ckpt, out, *extra):
    return run_cli(
        [
            "eval",
            "--checkpoint",
            str(ckpt),
            "--dataset",
            "digits",
            "--out",
            str(out),
            "--no-progress",
            *extra,
        ]
    )


def _pairs_args(ckpt, out, pairs: int, *extra) -> list[str]:
    """``eval-pairs`` on digits: ``--pairs pairs``, then ``extra``, then ``--out out``."""
    return [
        "eval-pairs",
        "--checkpoint",
        str(ckpt),
        "--dataset",
        "digits",
        "--pairs",
        str(pairs),
        *extra,
        "--out",
        str(out),
        "--no-progress",
    ]


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    assert "Traceback" not in err[0]
    return err[0]


def test_parsers_register_three_subcommands():
    parser = build_parser()
    args = parser.parse_args(["compare", "a.json", "b.json"])
    assert args.command == "compare"
    assert args.seed == 0
    args = parser.parse_args(["eval", "--checkpoint", "c", "--dataset", "d", "--out", "o"])
    assert (args.split, args.default_split) == (None, "test")  # explicit --split is told apart
    assert (args.batch_size, args.device, args.resume) == (256, "auto", False)


def test_eval_writes_result_and_predictions(ckpt_dir, tmp_path, capsys):
    out = tmp_path / "res.json"
    assert _eval(ckpt_dir / "cnn.safetensors", out, "--scales", SCALES, "--fill", "mean") == 0
    assert "wrote" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["schema"] == "geomrobust.eval/1"
    assert data["model"]["name"] == "mnist-cnn"
    assert data["model"]["params"] == 37642
    assert len(data["model"]["checkpoint_sha256"]) == 64
    assert data["model"]["normalisation_source"] == "checkpoint"
    assert data["data"]["n"] == 359
    assert data["data"]["fingerprint"]["dataset"] == "digits"
    assert data["transform"]["fill"] == [0.13]
    assert data["transform"]["fill_spec"] == "mean"
    assert {"geomrobust", "torch"} <= set(data["versions"])
    assert data["assumptions"] == []
    point_keys = {"scale", "angle_deg", "shift_px", "n", "correct", "accuracy", "ci95", "confusion"}
    assert point_keys <= set(data["points"][0])
    assert [p["scale"] for p in data["points"]] == [0.8, 1.0]
    assert set(data["summary"]) == {
        "clean_accuracy",
        "mean_accuracy",
        "worst_accuracy",
        "worst_point",
        "all_points_accuracy",
        "consistency",
        "relative_robustness",
        "flip_probability",
        "flip_share_by_pair",
    }
    assert len(data["summary"]["flip_share_by_pair"]) == 1  # two scales: one sequence step
    with np.load(tmp_path / "res.predictions.npz") as npz:
        assert set(npz.files) >= {"labels", "predictions", "clean", "scale", "angle_deg"}
        assert npz["predictions"].shape == (2, 359)
        assert npz["scale"].tolist() == [0.8, 1.0]
        assert npz["p_true"].shape == npz["p_predicted"].shape == (2, 359)
        assert npz["p_true"].dtype == np.float32
        # the predicted class's probability is the largest: at least the true class's
        assert (npz["p_predicted"] >= npz["p_true"] - 1e-6).all()
    assert not (tmp_path / "res.json.partial").exists()
    result = load_result(out)
    assert isinstance(result, EvalResult)
    assert result.to_dict()["points"] == data["points"]


def test_plain_state_dict_records_what_was_assumed(ckpt_dir, tmp_path):
    out = tmp_path / "plain.json"
    assert _eval(ckpt_dir / "plain.pt", out, "--model", "mnist-cnn", "--scales", SCALES) == 0
    data = json.loads(out.read_text())
    notes = " ".join(data["assumptions"])
    assert "images in [0, 1]" in notes
    assert "class count and names taken from the dataset (10" in notes
    assert data["model"]["mean"] is None
    assert data["model"]["normalisation_source"] == "none"
    out2 = tmp_path / "plain2.json"
    assert (
        _eval(
            ckpt_dir / "plain.pt",
            out2,
            "--model",
            "mnist-cnn",
            "--scales",
            SCALES,
            "--mean",
            "0.5",
            "--std",
            "0.25",
        )
        == 0
    )
    model = json.loads(out2.read_text())["model"]
    assert (model["mean"], model["std"], model["normalisation_source"]) == ([0.5], [0.25], "user")


S = ["--scales", SCALES]


@pytest.mark.parametrize(
    ("checkpoint", "extra", "match"),
    [
        ("missing.safetensors", S, r"^error: no checkpoint file at .*missing\.safetensors"),
        ("truncated.safetensors", S, r"truncated\.safetensors is truncated or corrupt"),
        ("garbage.pt", S, r"garbage\.pt is neither a safetensors nor a PyTorch file"),
        ("rgb.safetensors", S, r"takes 3 input channel\(s\) but dataset 'digits' has 1"),
        ("seven.safetensors", S, r"predicts 7 classes but the dataset has 10; use a checkpoint"),
        ("plain.pt", S, r"does not say which architecture .* pass --model NAME with a registry"),
        ("pairs.safetensors", S, r"predicts 7 classes but the dataset has 10"),
        ("ref:no-such-model", S, r"unknown reference checkpoint 'ref:no-such-model'; shipped: "),
        ("cnn.safetensors", ["--sweep", "scales"], r"unknown sweep 'scales'.*Did you mean 'scale'"),
        ("cnn.safetensors", ["--scales", "0:1:0"], r"--scales: step must be non-zero"),
        ("cnn.safetensors", ["--scales=-1,1"], r"scale must be finite and > 0; got -1.0"),
        ("cnn.safetensors", ["--angles", "ten"], r"--angles: 'ten' is not a number"),
        ("cnn.safetensors", [], r"pass --sweep S .* or a custom grid"),
        ("cnn.safetensors", ["--sweep", "scale", *S], r"either --sweep or --scales"),
        ("cnn.safetensors", [*S, "--batch-size", "0"], r"--batch-size must be >= 1; got 0"),
        ("cnn.safetensors", [*S, "--fill", "x"], r"--fill must be a number"),
        ("cnn.safetensors", [*S, "--mean", "0.5"], r"--mean and --std must be given together"),
        ("cnn.safetensors", [*S, "--device", "tpu"], r"--device must be auto, cpu, cuda"),
    ],
)
def test_bad_input_exits_2_with_one_line(ckpt_dir, tmp_path, capsys, checkpoint, extra, match):
    ckpt = checkpoint if checkpoint.startswith("ref:") else ckpt_dir / checkpoint
    out = tmp_path / "r.json"
    assert _eval(ckpt, out, *extra) == 2
    assert not out.exists()
    assert re.search(match, _error(capsys)), match


def test_fill_mean_without_normalisation_is_refused(ckpt_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["--model", "mnist-cnn", "--scales", SCALES, "--fill", "mean"]
    assert _eval(ckpt_dir / "plain.pt", out, *args) == 2
    assert "fill='mean' pads with the model's normalisation mean" in _error(capsys)


def test_missing_data_root_exits_2(ckpt_dir, tmp_path, capsys):
    code = run_cli(
        [
            "eval",
            "--checkpoint",
            str(ckpt_dir / "cnn.safetensors"),
            "--dataset",
            "mnist",
            "--data-root",
            str(tmp_path / "nowhere"),
            "--sweep",
            "scale",
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 2
    assert "data root" in _error(capsys)
    code = run_cli(
        [
            "eval",
            "--checkpoint",
            str(ckpt_dir / "cnn.safetensors"),
            "--dataset",
            "imagenet",
            "--sweep",
            "scale",
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 2
    assert "unknown dataset 'imagenet'; valid:" in _error(capsys)


def test_existing_output_needs_force(ckpt_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    out.write_text("{}")
    assert _eval(ckpt_dir / "cnn.safetensors", out, "--scales", SCALES) == 2
    assert "already exists; pass --force to overwrite" in _error(capsys)
    assert out.read_text() == "{}"
    assert _eval(ckpt_dir / "cnn.safetensors", out, "--scales", SCALES, "--force") == 0
    assert json.loads(out.read_text())["schema"] == "geomrobust.eval/1"
    capsys.readouterr()
    # A job script rerunning a finished run with --resume succeeds and changes nothing.
    before = out.read_bytes()
    assert _eval(ckpt_dir / "cnn.safetensors", out, "--scales", SCALES, "--resume") == 0
    assert capsys.readouterr().out == (
        f"{out} is already complete; nothing to resume (pass --force to run it again)\n"
    )
    assert out.read_bytes() == before


def test_cli_resume_after_interruption(ckpt_dir, tmp_path, monkeypatch):
    ckpt = ckpt_dir / "cnn.safetensors"
    ref = tmp_path / "ref.json"
    assert _eval(ckpt, ref, "--scales", "0.6,0.9,1.1") == 0

    # batches of 8: blocks of 16 batches (128 images), 3 blocks of the 359 images, each
    # with the 4 rows (3 scales and the identity)
    out = tmp_path / "r.json"
    original = _Runner._score_rows
    calls = []

    interrupt = [True]

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if interrupt[0] and len(calls) == 20:  # in the second block
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_Runner, "_score_rows", flaky)
    args = ("--scales", "0.6,0.9,1.1", "--batch-size", "8")
    assert _eval(ckpt, out, *args) == 130  # Ctrl-C: "error: interrupted"
    assert not out.exists()
    assert len(list((tmp_path / "r.json.partial").glob("point-*.npy"))) == 4  # block 1's rows
    calls.clear()
    interrupt[0] = False
    assert _eval(ckpt, out, *args, "--resume") == 0
    assert len(calls) == 359 // 8 + 1 - 16  # only the batches of the unfinished blocks
    a, b = json.loads(ref.read_text()), json.loads(out.read_text())
    assert a["points"] == b["points"]
    assert a["summary"] == b["summary"]
    assert (b["run"]["shards_resumed"], b["run"]["shards_computed"]) == (4, 8)
    assert not (tmp_path / "r.json.partial").exists()


def test_compare_same_data_and_refusal(ckpt_dir, tmp_path, capsys):
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    assert _eval(ckpt_dir / "cnn.safetensors", a, "--scales", SCALES) == 0
    assert _eval(ckpt_dir / "plain.pt", b, "--model", "mnist-cnn", "--scales", SCALES) == 0
    capsys.readouterr()
    out = tmp_path / "cmp.json"
    assert run_cli(["compare", str(a), str(b), "--out", str(out), "--resamples", "200"]) == 0
    printed = capsys.readouterr().out
    assert "McNemar p" in printed
    cmp = json.loads(out.read_text())
    assert cmp["schema"] == "geomrobust.compare/1"
    assert len(cmp["points"]) == 2
    for p in cmp["points"]:
        assert 0.0 <= p["mcnemar_p"] <= 1.0
        assert p["difference"] == pytest.approx(p["accuracy_a"] - p["accuracy_b"])
    lo, hi = cmp["mean_difference_ci95"]
    assert lo <= cmp["mean_accuracy_difference"] <= hi
    # Another sweep: refused.
    assert _eval(ckpt_dir / "cnn.safetensors", c, "--scales", "0.5,1") == 0
    capsys.readouterr()
    assert run_cli(["compare", str(a), str(c)]) == 2
    assert "not comparable: different sweeps" in _error(capsys)
    # Another transform convention: refused.
    d = tmp_path / "d.json"
    assert (
        _eval(ckpt_dir / "cnn.safetensors", d, "--scales", SCALES, "--interpolation", "nearest")
        == 0
    )
    capsys.readouterr()
    assert run_cli(["compare", str(a), str(d)]) == 2
    assert "different transform conventions" in _error(capsys)
    # Missing predictions file: refused.
    (tmp_path / "b.predictions.npz").unlink()
    assert run_cli(["compare", str(a), str(b)]) == 2
    assert "no predictions file at" in _error(capsys)
    assert run_cli(["compare", str(a), str(tmp_path / "none.json")]) == 2
    assert "no result file at" in _error(capsys)


def test_eval_pairs(ckpt_dir, tmp_path, capsys):
    out = tmp_path / "pairs.json"
    args = _pairs_args(ckpt_dir / "pairs.safetensors", out, 70, "--seed", "3")
    assert run_cli(args) == 0
    data = json.loads(out.read_text())
    assert data["schema"] == "geomrobust.pairs/1"
    assert data["n"] == 70
    assert len(data["per_class_recall"]) == 7
    assert np.asarray(data["confusion"]).sum() == 70
    assert np.asarray(data["confusion"]).sum(axis=1).tolist() == [10] * 7
    assert data["accuracy"] == pytest.approx(np.trace(np.asarray(data["confusion"])) / 70)
    assert data["class_names"][0] == "none"
    capsys.readouterr()
    assert run_cli(args) == 2
    assert "already exists" in _error(capsys)
    before = out.read_bytes()
    assert run_cli([*args, "--resume"]) == 0
    assert capsys.readouterr().out == (
        f"{out} is already complete; nothing to resume (pass --force to run it again)\n"
    )
    assert out.read_bytes() == before
    bad = [*args[:-3], "--out", str(tmp_path / "x.json"), "--pairs", "0"]
    assert run_cli(bad) == 2
    assert "--pairs must be >= 1" in _error(capsys)


@pytest.mark.parametrize("command", ["eval", "eval-pairs", "compare", "report"])
def test_help_prints_percent_signs_once(command, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli([command, "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere
    assert "95 %" in text
    assert "%%" not in text


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")


def test_eval_pairs_refuses_an_image_classifier(ckpt_dir, tmp_path, capsys):
    args = _pairs_args(ckpt_dir / "cnn.safetensors", tmp_path / "p.json", 10)
    assert run_cli(args) == 2
    assert "is an image classifier (mnist-cnn), not a transformation-pair" in _error(capsys)


def test_eval_of_a_pair_classifier_points_to_eval_pairs(ckpt_dir, tmp_path, capsys):
    # A 10-class pair model passes the class check, then is sent to eval-pairs.
    from geomrobust.models import build_model, save_checkpoint

    path = tmp_path / "pairs10.safetensors"
    save_checkpoint(path, build_model("pair-net", num_classes=10))
    assert _eval(path, tmp_path / "r.json", *S) == 2
    assert "is a pair classifier (pair-net); evaluate it with 'geomrobust eval-pairs'" in _error(
        capsys
    )


def test_model_output_mismatch_leaves_no_partial(tmp_path, capsys, monkeypatch):
    # A checkpoint whose metadata claims 10 classes but whose model returns 3 logits would
    # fail at the first batch; simulate with a factory model.
    import torch

    from geomrobust import robustness

    class Three(torch.nn.Module):
        in_channels = 1

        def forward(self, x):
            return x.flatten(1)[:, :3]

    real = robustness.load_for_eval

    def fake(*args, **kwargs):
        loaded = real(*args, **kwargs)
        return robustness.LoadedModel(Three().eval(), loaded.record, (), 1)

    monkeypatch.setattr(robustness, "load_for_eval", fake)
    from geomrobust.models import build_model, save_checkpoint

    ckpt = save_checkpoint(tmp_path / "m.safetensors", build_model("mnist-cnn"))
    out = tmp_path / "r.json"
    assert _eval(ckpt, out, *S) == 2
    assert "the model predicts 3 classes but the dataset has 10" in _error(capsys)
    assert not out.exists()
    assert not (tmp_path / "r.json.partial").exists()


def test_eval_pairs_uses_the_checkpoint_pair_config(tmp_path, capsys):
    from geomrobust.models import CheckpointMeta, build_model, save_checkpoint

    cfg = {
        "angle_deg": [[40.0, 50.0]],
        "scale": [[0.6, 0.7]],
        "shift_fraction": [0.2, 0.3],
        "crop": True,
    }
    ckpt = save_checkpoint(
        tmp_path / "p.safetensors",
        build_model("pair-net"),
        meta=CheckpointMeta(training={"pair_config": cfg}),
    )
    out = tmp_path / "p.json"
    args = _pairs_args(ckpt, out, 14)
    assert run_cli(args) == 0
    recorded = json.loads(out.read_text())["pair_config"]
    assert recorded["angle_deg"] == [[40.0, 50.0]]
    assert recorded["shift_fraction"] == [0.2, 0.3]
    assert recorded["crop"] is True


def test_warns_once_when_the_data_differs_from_the_training_data(ckpt_dir, tmp_path):
    def stderr_of(ckpt: str, out: str) -> list[str]:
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "geomrobust", "eval", "--checkpoint", ckpt),
                *("--dataset", "digits", "--scales", "1", "--no-progress"),
                *("--out", str(tmp_path / out)),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return [line for line in proc.stderr.splitlines() if line.startswith("warning:")]

    warnings = stderr_of("ref:mnist-cnn", "ref.json")
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "warning: ref:mnist-cnn was trained on 'mnist' but is evaluated on 'digits'"
    )
    # A checkpoint that records no training data: nothing to warn about.
    assert stderr_of(str(ckpt_dir / "cnn.safetensors"), "cnn.json") == []


def test_python_warnings_are_one_line_and_name_the_fallback_kernel(tmp_path):
    # No C++ compiler: the deformable twin runs on the plain-PyTorch kernel after one warning,
    # printed like the suite's own warnings (no source excerpt), and the result says so.
    def run(out: str, *extra: str) -> list[str]:
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "geomrobust", "eval"),
                *("--checkpoint", "ref:mnist-cnn-dcnv2", "--dataset", "digits"),
                *("--scales", "1", "--no-progress", "--out", str(tmp_path / out), *extra),
            ],
            capture_output=True,
            text=True,
            check=False,
            env={
                **os.environ,
                "CXX": "geomrobust-no-such-compiler",
                "GEOMROBUST_CACHE_DIR": str(tmp_path / "cache"),
            },
        )
        assert proc.returncode == 0, proc.stderr
        return [line for line in proc.stderr.splitlines() if "kernel is unavailable" in line]

    lines = run("dcn.json")
    assert len(lines) == 1
    assert lines[0].startswith(
        "warning: the compiled deformable-convolution kernel is unavailable "
        "(no C++ compiler 'geomrobust-no-such-compiler' on PATH"
    )
    assert "RuntimeWarning" not in lines[0]
    assert load_result(tmp_path / "dcn.json").run["deform_kernel"] == "python"
    (verbose,) = run("dcn-v.json", "-v")
    assert re.search(r"\(RuntimeWarning at .*_forward\.py:\d+\)$", verbose)


# --- torchvision architectures from plain state dicts (--model torchvision:NAME) ---


@pytest.fixture(scope="module")
def resnet18_files(tmp_path_factory):
    """A 10-class torchvision resnet18 (seeded), saved plain and as a DDP training state."""
    import torch
    import torchvision

    folder = tmp_path_factory.mktemp("tv")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    state = model.state_dict()
    torch.save(state, folder / "plain.pt")
    ddp = {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}
    torch.save(ddp, folder / "ddp.pt")
    return model, folder


def test_torchvision_state_dicts_with_and_without_prefix_evaluate_alike(resnet18_files, tmp_path):
    # Library level: a CLI run over the whole shared CIFAR-10 split (4,660 images) with
    # resnet18 takes about a minute on two cores; 64 images take a second.
    import warnings
    from pathlib import Path

    import torch

    from geomrobust.robustness import ModelRecord, evaluate, load_for_eval, write_result
    from geomrobust.transforms import make_sweep
    from geomrobust.transforms.datasets import ChecksumWarning, load_dataset

    root = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10-train"
    if not root.is_dir():
        pytest.skip(f"shared CIFAR-10 files not found at {root}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChecksumWarning)  # a partial copy of the split
        data = load_dataset("cifar10", split="train", root=root).head(64)
    model, folder = resnet18_files
    sweep = make_sweep(scales=(0.8, 1.0))
    results = {}
    for name in ("plain", "ddp"):
        loaded = load_for_eval(
            folder / f"{name}.pt",
            data=data,
            model="torchvision:resnet18",
            model_args={"num_classes": 10},
            device="cpu",
        )
        result = evaluate(
            loaded.model,
            data,
            sweep,
            device="cpu",
            record=loaded.record,
            assumptions=loaded.assumptions,
        )
        write_result(result, tmp_path / f"{name}.json")
        results[name] = json.loads((tmp_path / f"{name}.json").read_text())
    plain, ddp = results["plain"], results["ddp"]
    assert plain["points"] == ddp["points"]
    assert plain["summary"] == ddp["summary"]
    assert [p["accuracy"] for p in plain["points"]] == [p["accuracy"] for p in ddp["points"]]
    with torch.no_grad():
        expected = model(data.images).argmax(1).numpy()  # the source model, unwarped images
    for name in ("plain", "ddp"):
        predictions = load_result(tmp_path / f"{name}.json").predictions
        assert np.array_equal(predictions.clean, expected)
    assert len(set(expected.tolist())) > 1  # not a constant classifier
    assert plain["model"]["name"] == "torchvision:resnet18"
    assert plain["model"]["model_args"] == ddp["model"]["model_args"] == {"num_classes": 10}
    assert plain["model"]["checkpoint_unwrapped"] == []
    assert ddp["model"]["checkpoint_unwrapped"] == [
        "state_dict key 'state_dict'",
        "prefix 'module.'",
    ]
    assert ModelRecord.from_dict(ddp["model"]).checkpoint_unwrapped == (
        "state_dict key 'state_dict'",
        "prefix 'module.'",
    )
    old = {k: v for k, v in ddp["model"].items() if k not in ("model_args", "checkpoint_unwrapped")}
    record = ModelRecord.from_dict(old)  # written before these fields existed
    assert (record.model_args, record.checkpoint_unwrapped) == ({}, ())


def test_torchvision_class_count_error_reads_as_flags(resnet18_files, tmp_path, capsys):
    _, folder = resnet18_files
    out = tmp_path / "r.json"
    args = ["--model", "torchvision:resnet18", *S]
    assert _eval(folder / "ddp.pt", out, *args) == 2
    error = _error(capsys)
    assert "predicts 10 classes but the model was built for 1000; " in error
    assert """pass --model-args '{"num_classes": 10}' to build it""" in error
    assert _eval(folder / "ddp.pt", out, *args, "--model-args", '{"num_classes": 10}') == 2
    assert "takes 3 input channel(s) but dataset 'digits' has 1" in _error(capsys)
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{num_classes: 10}", r"--model-args must be a JSON object such as .*; got '\{num_classes"),
        ("[10]", r"--model-args must be a JSON object .*; got '\[10\]', which is not an object"),
    ],
)
def test_model_args_must_be_a_json_object(ckpt_dir, tmp_path, capsys, text, match):
    args = ["--model", "mnist-cnn", "--model-args", text, *S]
    assert _eval(ckpt_dir / "plain.pt", tmp_path / "r.json", *args) == 2
    assert re.search(match, _error(capsys)), match


def test_model_args_reach_the_architecture(ckpt_dir, tmp_path):
    out = tmp_path / "r.json"
    args = ["--model", "mnist-cnn", "--model-args", '{"num_classes": 10}', *S]
    assert _eval(ckpt_dir / "plain.pt", out, *args) == 0
    assert json.loads(out.read_text())["model"]["model_args"] == {"num_classes": 10}


def test_forward_flags_are_recorded_by_eval_and_eval_pairs(ckpt_dir, tmp_path):
    def run_of(name: str, *flags: str) -> dict:
        out = tmp_path / name
        args = ("--scales", SCALES, *flags, "--max-images", "40")
        assert _eval(ckpt_dir / "cnn.safetensors", out, *args) == 0
        return json.loads(out.read_text())["run"]

    run = run_of("amp.json", "--amp", "bf16", "--channels-last")
    assert (run["amp"], run["channels_last"], run["graph"]) == ("bf16", True, "eager")
    assert run["numerics"] == "amp=bf16,channels_last"
    run = run_of("plain.json", "--no-cpu-fast-path")
    assert (run["cpu_fast_path"], run["numerics"]) == (False, "exact")
    pairs = tmp_path / "pairs.json"
    args = _pairs_args(ckpt_dir / "pairs.safetensors", pairs, 20, "--graph", "freeze")
    assert run_cli(args) == 0
    run = json.loads(pairs.read_text())["run"]
    assert (run["graph"], run["numerics"], run["oom_halvings"]) == ("freeze", "exact", 0)


def test_compile_with_a_graph_is_refused_in_one_line(ckpt_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert (
        _eval(
            ckpt_dir / "cnn.safetensors",
            out,
            "--scales",
            SCALES,
            "--compile",
            "--graph",
            "freeze",
        )
        == 2
    )
    assert "compile and graph='freeze' are two ways" in _error(capsys)
