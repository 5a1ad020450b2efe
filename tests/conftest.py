"""Shared fixtures: ``device`` and ``dtype`` come from command-line options.

``pytest --device cpu,cuda --dtype float32,float64`` runs the parametrised tests on each;
CUDA cases are skipped when no GPU is present.
"""

from __future__ import annotations

import pytest
import torch

from geomrobust.models import CheckpointMeta, build_model, save_checkpoint
from geomrobust.transforms.datasets import DIGITS_CLASSES

_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="comma-separated devices: cpu,cuda")
    parser.addoption("--dtype", default="float32,float64", help="comma-separated float dtypes")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "device" in metafunc.fixturenames:
        devices = metafunc.config.getoption("--device").split(",")
        metafunc.parametrize("device", devices, indirect=True)
    if "dtype" in metafunc.fixturenames:
        names = metafunc.config.getoption("--dtype").split(",")
        unknown = [n for n in names if n not in _DTYPES]
        if unknown:
            raise pytest.UsageError(f"--dtype: unknown {unknown}; valid: {list(_DTYPES)}")
        metafunc.parametrize("dtype", [_DTYPES[n] for n in names], ids=names)


@pytest.fixture
def device(request: pytest.FixtureRequest) -> torch.device:
    name = request.param
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    return torch.device(name)


@pytest.fixture(scope="session")
def ckpt_dir(tmp_path_factory):
    """Saved checkpoints: an mnist-cnn with metadata, its plain state dict, odd ones."""
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = build_model("mnist-cnn")
    meta = CheckpointMeta(class_names=DIGITS_CLASSES, mean=(0.13,), std=(0.31,))
    save_checkpoint(folder / "cnn.safetensors", model, meta=meta)
    torch.save(model.state_dict(), folder / "plain.pt")
    save_checkpoint(folder / "rgb.safetensors", build_model("mnist-cnn", in_channels=3))
    save_checkpoint(folder / "seven.safetensors", build_model("mnist-cnn", num_classes=7))
    save_checkpoint(folder / "pairs.safetensors", build_model("pair-net"))
    good = (folder / "cnn.safetensors").read_bytes()
    (folder / "truncated.safetensors").write_bytes(good[: len(good) // 2])
    (folder / "garbage.pt").write_bytes(b"not a checkpoint at all")
    return folder
