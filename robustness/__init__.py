"""geomrobust: geometric-robustness evaluation of image classifiers (engine, metrics, CLI).

The engine and its records are imported lazily (``robustness.evaluate`` loads torch on first
use), so ``geomrobust --version`` stays fast.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("geomrobust")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

_LAZY = {
    "evaluate": "robustness._engine",
    "EvalOptions": "robustness._eval_options",
    "Shard": "robustness._engine",
    "ShardResult": "robustness._engine",
    "plan_shards": "robustness._engine",
    "run_shard": "robustness._engine",
    "merge_shards": "robustness._engine",
    "work_rows": "robustness._engine",
    "EvalResult": "robustness._results",
    "PointResult": "robustness._results",
    "Summary": "robustness._results",
    "ModelRecord": "robustness._results",
    "DataRecord": "robustness._results",
    "TransformRecord": "robustness._results",
    "Predictions": "robustness._results",
    "summarise": "robustness._results",
    "load_result": "robustness._io",
    "write_result": "robustness._io",
    "predictions_path": "robustness._io",
    "compare_results": "robustness._compare",
    "Comparison": "robustness._compare",
    "PointComparison": "robustness._compare",
    "evaluate_pairs": "robustness._pairs_eval",
    "PairResult": "robustness._pairs_eval",
    "load_for_eval": "robustness._checkpoints",
    "LoadedModel": "robustness._checkpoints",
    "EvalInputError": "robustness._eval_errors",
    "ResumeError": "robustness._eval_errors",
    "IncompatibleResultsError": "robustness._eval_errors",
    "wilson_interval": "robustness._metrics",
    "confusion_matrix": "robustness._metrics",
    "mcnemar_exact": "robustness._metrics",
    "paired_bootstrap_ci": "robustness._metrics",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'robustness' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
