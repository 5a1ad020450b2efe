"""Datasets of the suite, loaded by name with :func:`load_dataset`.

* ``digits``: scikit-learn's handwritten digits, embedded, the offline default;
* ``mnist``, ``fashion-mnist``: IDX files (gzipped or not) in torchvision's layout;
* ``cifar10``: the python pickle batches in torchvision's layout.

Files are checked by format, not by checksum: a file that differs from the official release
gives a :class:`ChecksumWarning` and is used; a missing or malformed one raises a
:class:`DatasetError` that names it and says how to fix it. Every dataset comes back as an
:class:`ImageDataset` (float32 ``(N, C, H, W)`` images in [0, 1], int64 labels, class names)
with a :class:`DataFingerprint` of what was read.

Users' own image folders (``ROOT/<class>/<file>``, torchvision's ``ImageFolder`` layout) are
listed by :func:`load_image_folder` into a :class:`FolderDataset` that streams its images:
they are decoded in DataLoader workers, batch by batch, and never all held in memory.
"""

from ._batch import Batch
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
from ._folder import FolderDataset, default_workers, load_image_folder, reopen_image_folder
from ._folder_index import (
    IMAGE_EXTENSIONS,
    OTHER_CLASS,
    FolderFingerprint,
    read_class_map,
)
from ._mnist import FASHION_MNIST_CLASSES, MNIST_CLASSES, load_fashion_mnist, load_mnist
from ._pairs import PairClass, PairConfig, TransformPairs
from ._preprocess import PREPROCESS_ORDER, Preprocess, decode_image_file
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
    "IMAGE_EXTENSIONS",
    "MNIST_CLASSES",
    "OTHER_CLASS",
    "PREPROCESS_ORDER",
    "Batch",
    "ChecksumWarning",
    "DataFingerprint",
    "DatasetError",
    "DatasetFormatError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "FileDigest",
    "FolderDataset",
    "FolderFingerprint",
    "ImageDataset",
    "PairClass",
    "PairConfig",
    "Preprocess",
    "Split",
    "TransformPairs",
    "TransformedDataset",
    "UnsafePickleError",
    "array_sha256",
    "dataset_info",
    "decode_image_file",
    "default_workers",
    "file_sha256",
    "list_datasets",
    "load_cifar10",
    "load_dataset",
    "load_digits",
    "load_digits_dataset",
    "load_fashion_mnist",
    "load_image_folder",
    "load_mnist",
    "materialise",
    "materialise_pairs",
    "quantise",
    "read_class_map",
    "reopen_image_folder",
    "safe_unpickle",
    "verify_materialised",
]
