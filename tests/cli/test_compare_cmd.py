"""``geomrobust compare`` on two real attack results (the reference MNIST CNN and its DCNv2
twin, 60 digits, a 5 × 3 × 3 grid), its refusals, and the flip rate of an eval comparison."""

from __future__ import annotations

import json

import pytest

from geomrobust.cli import main as run_cli
from geomrobust.robustness import (
    EvalOptions,
    attack,
    attack_preset,
    load_attack_result,
    load_for_eval,
    load_result,
    write_attack_result,
)
from geomrobust.robustness._metrics import mcnemar_exact
from geomrobust.transforms.datasets import load_dataset

MODES = ("clean", "random", "worst_of_k", "grid")


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "nothing on stderr"
    assert err[-1].startswith("error: ")
    assert not any("Traceback" in line for line in err)
    return err[-1]


@pytest.fixture(scope="module")
def attacks(tmp_path_factory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("attacks")
    data = load_dataset("digits", split="test").head(60)
    out = {}
    for key, ckpt in (("a", "ref:mnist-cnn"), ("b", "ref:mnist-cnn-dcnv2")):
        loaded = load_for_eval(ckpt, data=data)
        result = attack(
            loaded.model,
            data,
            attack_preset("engstrom-mnist", grid=(5, 3, 3)),
            options=EvalOptions(mean=loaded.record.mean, std=loaded.record.std),
            record=loaded.record,
        )
        out[key] = write_attack_result(result, folder / f"{key}.json")
    return out


def test_compare_two_attacks(attacks, tmp_path, capsys):
    out = tmp_path / "cmp.json"
    assert run_cli(["compare", str(attacks["a"]), str(attacks["b"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "A: mnist-cnn (ref:mnist-cnn)" in printed
    assert "B: mnist-cnn-dcnv2 (ref:mnist-cnn-dcnv2)" in printed
    assert "n = 60 images" in printed
    assert "attack: engstrom-mnist; box ±30 deg, ±3 px x, ±3 px y; k = 10; grid 5 x 3 x 3" in (
        printed
    )
    lines = {line.split()[0]: line.split() for line in printed.splitlines() if line}
    cmp = json.loads(out.read_text())
    assert cmp["schema"] == "geomrobust.compare-attack/1"
    assert cmp["n"] == 60
    assert cmp["attack"]["grid"] == [5, 3, 3]
    assert cmp["attack"]["k"] == 10
    assert [m["mode"] for m in cmp["modes"]] == list(MODES)
    a, b = load_attack_result(attacks["a"]), load_attack_result(attacks["b"])
    ca, cb = a.correct(), b.correct()
    for m in cmp["modes"]:
        x, y = ca[m["mode"]], cb[m["mode"]]
        only_a, only_b = int((x & ~y).sum()), int((y & ~x).sum())
        assert (m["only_a"], m["only_b"]) == (only_a, only_b)
        assert m["mcnemar_p"] == mcnemar_exact(only_a, only_b)
        assert m["accuracy_a"] == a.summary[f"{m['mode']}_accuracy"]
        assert m["accuracy_b"] == b.summary[f"{m['mode']}_accuracy"]
        assert m["difference"] == pytest.approx(m["accuracy_a"] - m["accuracy_b"])
        row = lines[{"worst_of_k": "worst-of-k"}.get(m["mode"], m["mode"])]
        assert [float(v) for v in row[1:3]] == pytest.approx(
            [m["accuracy_a"], m["accuracy_b"]], abs=5e-5
        )
        assert [int(v) for v in row[4:6]] == [only_a, only_b]
    # The grid accuracy is at most the worst-of-k one, which is at most the clean one.
    acc = {m["mode"]: m["accuracy_a"] for m in cmp["modes"]}
    assert acc["grid"] <= acc["worst_of_k"] <= acc["clean"]


def test_compare_refuses_other_attack_settings(attacks, tmp_path, capsys):
    data = json.loads(attacks["b"].read_text())
    data["attack"]["seed"] = 1
    other = tmp_path / "seed1.json"
    other.write_text(json.dumps(data))
    npz = attacks["b"].with_name("b.predictions.npz")
    (tmp_path / "seed1.predictions.npz").write_bytes(npz.read_bytes())
    assert run_cli(["compare", str(attacks["a"]), str(other)]) == 2
    err = _error(capsys)
    assert "not comparable: different attack settings (seed: 0 vs 1)" in err


def test_eval_compare_flip_rate_and_a_mix_refused(attacks, tmp_path, capsys):
    evals = {}
    for key, ckpt in (("a", "ref:mnist-cnn"), ("b", "ref:mnist-cnn-dcnv2")):
        evals[key] = tmp_path / f"e{key}.json"
        args = ["eval", "--checkpoint", ckpt, "--dataset", "digits", "--max-images", "60"]
        args += ["--angles=-10:10:10", "--out", str(evals[key]), "--no-progress"]
        assert run_cli(args) == 0
    capsys.readouterr()
    out = tmp_path / "cmp.json"
    assert run_cli(["compare", str(evals["a"]), str(evals["b"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    cmp = json.loads(out.read_text())
    assert cmp["schema"] == "geomrobust.compare/1"
    fp_a = load_result(evals["a"]).summary.flip_probability
    fp_b = load_result(evals["b"]).summary.flip_probability
    assert (cmp["flip_probability_a"], cmp["flip_probability_b"]) == (fp_a, fp_b)
    assert cmp["flip_rate"] == pytest.approx(fp_a / fp_b)
    assert f"flip rate FR = FP_A / FP_B {fp_a / fp_b:.4f}" in printed
    # An attack result and an eval result: refused, whichever comes first.
    assert run_cli(["compare", str(attacks["a"]), str(evals["b"])]) == 2
    assert "A is an attack result and B is an eval result" in _error(capsys)
    assert run_cli(["compare", str(evals["a"]), str(attacks["b"])]) == 2
    assert "A is an eval result and B is an attack result" in _error(capsys)
