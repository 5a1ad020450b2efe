"""Shared fixtures: ``device`` and ``dtype`` come from command-line options.

``pytest --device cpu,cuda --dtype float32,float64`` runs the parametrised tests on each;
CUDA cases are skipped when no GPU is present.
"""

from __future__ import annotations

import pytest
import torch

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
