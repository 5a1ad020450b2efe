"""``geomrobust models``: the handler, called directly."""

from __future__ import annotations

import argparse
import json

import pytest

from geomrobust.cli._errors import UsageError
from geomrobust.cli._models import add_parser, run_models
from geomrobust.models import get_model_info, list_models


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="geomrobust")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["models", *argv])


def test_table_lists_every_model_with_params_and_flops(capsys):
    args = _parse()
    assert args.handler is run_models
    assert run_models(args) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["name", "input", "classes", "params", "FLOPs"]
    assert len(lines) == 1 + len(list_models())
    for name, line in zip(list_models(), lines[1:], strict=True):
        info = get_model_info(name)
        assert line.startswith(name)
        assert f"{info.params:,}" in line
        assert f"{info.flops:,}" in line
    assert "mnist-cnn-dcnv2  1x28x28" in out
    assert "1x28x28 x2" in out  # pair-net takes two images


def test_json_and_selection(capsys):
    assert run_models(_parse("mnist-cnn", "cifar-small", "--json", "--in-channels", "1")) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in records] == ["mnist-cnn", "cifar-small"]
    assert records[1]["input_shape"] == [1, 32, 32]
    assert records[1]["params"] == get_model_info("cifar-small", in_channels=1).params
    assert isinstance(records[0]["flops"], int)


def test_bad_input_is_a_usage_error():
    with pytest.raises(UsageError, match=r"unknown model\(s\) \['mnist'\]; valid: cifar-small, "):
        run_models(_parse("mnist"))
    with pytest.raises(UsageError, match="--in-channels must be >= 1; got 0"):
        run_models(_parse("--in-channels", "0"))
    with pytest.raises(UsageError, match="--num-classes must be >= 0; got -1"):
        run_models(_parse("--num-classes", "-1"))
