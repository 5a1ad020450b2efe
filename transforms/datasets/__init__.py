"""Datasets of the suite, loaded by name with :func:`load_dataset`.

* ``digits``: scikit-learn's handwritten digits, embedded, the offline default;
* ``mnist``, ``fashion-mnist``: IDX files (gzipped or not) in torchvision's layout;
* ``cifar10``: the python pickle batches in torchvision's layout.

Files are checked by format, not by checksum: a file that differs from the official release
gives a :class:`ChecksumWarning` and is used; a missing or malformed one raises a
:class:`DatasetError` that names it and says how to fix it. Every dataset comes back as an
:class:`ImageDataset` (float32 ``(N, C, H, W)`` images in [0, 1], int64 labels, class names)
with a :class:`DataFingerprint` of what was read.
"""

from ._cifar import CIFAR10_CLASSES, load_cifar10, safe_unpickle
from ._dataset import ImageDataset
from ._digits import DIGITS_CLASSES, load_digits, load_digits_dataset
from ._errors import (
    ChecksumWarning,
    DatasetError,
    DatasetFormatError,
    DatasetNotFoundError,
    UnsafePickleError,
)
from ._fingerprint import DataFingerprint, FileDigest, array_sha256, file_sha256
from ._mnist import FASHION_MNIST_CLASSES, MNIST_CLASSES, load_fashion_mnist, load_mnist
from ._pairs import PairClass, PairConfig, TransformPairs
from ._registry import DatasetInfo, Split, dataset_info, list_datasets, load_dataset
from ._transformed import (
    TransformedDataset,
    materialise,
    materialise_pairs,
    quantise,
    verify_materialised,
)

__all__ = [
    "CIFAR10_CLASSES",
    "DIGITS_CLASSES",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "ChecksumWarning",
    "DataFingerprint",
    "DatasetError",
    "DatasetFormatError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "FileDigest",
    "ImageDataset",
    "PairClass",
    "PairConfig",
    "Split",
    "TransformPairs",
    "TransformedDataset",
    "UnsafePickleError",
    "array_sha256",
    "dataset_info",
    "file_sha256",
    "list_datasets",
    "load_cifar10",
    "load_dataset",
    "load_digits",
    "load_digits_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "materialise",
    "materialise_pairs",
    "quantise",
    "safe_unpickle",
    "verify_materialised",
]
