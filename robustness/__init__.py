"""geomrobust: geometric-robustness evaluation of image classifiers (engine, metrics, CLI)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("geomrobust")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
