"""geomrobust: geometric-robustness evaluation of image classifiers.

One import root for the whole suite:

- :mod:`geomrobust.transforms`: the transform convention (ops, parameters, sweeps,
  sampling) and the datasets;
- :mod:`geomrobust.models`: layers (DCNv2 blocks), the model registry, checkpoints and
  training;
- :mod:`geomrobust.robustness`: the evaluation engine, metrics, results and scale-out;
- :mod:`geomrobust.reports`: tables, figures and the HTML/Markdown report;
- :mod:`geomrobust.cli`: the ``geomrobust`` console script, a layer on top that the library
  never imports.

The names below are the curated public API; each is imported on first use, so
``import geomrobust`` (and ``geomrobust --version``) stays fast.
"""

from importlib.metadata import PackageNotFoundError, version

from geomrobust._lazy import lazy_exports

try:
    __version__ = version("geomrobust")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

_LAZY = {
    # transforms
    "affine": "geomrobust.transforms",
    "warp": "geomrobust.transforms",
    "AffineParams": "geomrobust.transforms",
    "AffineSampler": "geomrobust.transforms",
    "Sweep": "geomrobust.transforms",
    "get_sweep": "geomrobust.transforms",
    "make_sweep": "geomrobust.transforms",
    "load_dataset": "geomrobust.transforms.datasets",
    # models
    "build_model": "geomrobust.models",
    "list_models": "geomrobust.models",
    "load_checkpoint": "geomrobust.models",
    "save_checkpoint": "geomrobust.models",
    "train_classifier": "geomrobust.models",
    # evaluation
    "evaluate": "geomrobust.robustness",
    "EvalOptions": "geomrobust.robustness",
    "EvalResult": "geomrobust.robustness",
    "load_for_eval": "geomrobust.robustness",
    "load_result": "geomrobust.robustness",
    "write_result": "geomrobust.robustness",
    "compare_results": "geomrobust.robustness",
    "evaluate_pairs": "geomrobust.robustness",
    "PairResult": "geomrobust.robustness",
    # reports
    "build_report": "geomrobust.reports",
}

__all__ = ["__version__", *sorted(_LAZY)]


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
