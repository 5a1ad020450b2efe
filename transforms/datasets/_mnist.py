"""MNIST and Fashion-MNIST, read from IDX files in torchvision's layout.

``ROOT/MNIST/raw/`` (``ROOT/FashionMNIST/raw/``), ``ROOT/raw/`` or ``ROOT`` itself may hold
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte`` (train) and ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte`` (test), each gzipped (``.gz``, preferred when both exist: its
official md5 is known) or not. A split needs only its own two files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ._dataset import ImageDataset, make_dataset
from ._errors import DatasetFormatError
from ._files import find_split_files, read_file
from ._idx import parse_idx_images, parse_idx_labels
from ._registry import register_dataset
from ._torchvision import download_with_torchvision

__all__ = ["FASHION_MNIST_CLASSES", "MNIST_CLASSES", "load_fashion_mnist", "load_mnist"]

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_PREFIX = {"train": "train", "test": "t10k"}


@dataclass(frozen=True)
class _IdxSpec:
    name: str
    title: str
    folder: str  # torchvision's class name, which is also its folder under the root
    classes: tuple[str, ...]
    md5: dict[str, str]  # official md5 of each .gz, as in torchvision's ``resources``

    @property
    def layout(self) -> str:
        return (
            f"{self.folder}/raw/train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz "
            "(t10k-* for the test split; gzipped or not)"
        )


_MNIST = _IdxSpec(
    name="mnist",
    title="MNIST",
    folder="MNIST",
    classes=MNIST_CLASSES,
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
)
_FASHION = _IdxSpec(
    name="fashion-mnist",
    title="Fashion-MNIST",
    folder="FashionMNIST",
    classes=FASHION_MNIST_CLASSES,
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
)


def _find(spec: _IdxSpec, *, split: str, root: Path) -> list[Path]:
    prefix = _PREFIX[split]
    names = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    return find_split_files(
        root,
        subdirs=(f"{spec.folder}/raw", "raw", "."),
        files=[(f"{n}.gz", n) for n in names],
        dataset=spec.title,
        split=split,
        fix=(
            f"Put the {prefix}-* IDX files (gzipped or not) in {str(root / spec.folder / 'raw')!r}"
            ", or pass download=True to fetch them with torchvision (needs internet)."
        ),
    )


def _load(spec: _IdxSpec, *, split: str, root: Path, download: bool) -> ImageDataset:
    if download:
        download_with_torchvision(
            spec.folder,
            root=root,
            split=split,
            title=spec.title,
            have=lambda: _find(spec, split=split, root=root),
        )
    images_path, labels_path = _find(spec, split=split, root=root)
    what = f"{spec.title} {split}"
    images_file = read_file(
        images_path, root=root, official_md5=spec.md5.get(images_path.name), what=f"{what} images"
    )
    labels_file = read_file(
        labels_path, root=root, official_md5=spec.md5.get(labels_path.name), what=f"{what} labels"
    )
    images = parse_idx_images(images_file.data, path=images_path, size=(28, 28))
    labels = parse_idx_labels(labels_file.data, path=labels_path, num_classes=len(spec.classes))
    if images.shape[0] != labels.shape[0]:
        raise DatasetFormatError(
            f"{str(images_path)!r} holds {images.shape[0]} images but {str(labels_path)!r} "
            f"holds {labels.shape[0]} labels; they must agree: the two files come from "
            "different copies or one is incomplete",
            path=labels_path,
        )
    for read in (images_file, labels_file):
        read.warn_if_unofficial()
    return make_dataset(
        name=spec.name,
        split=split,
        pixels=images[:, None],
        labels=labels,
        classes=spec.classes,
        files=(images_file.digest, labels_file.digest),
    )


@register_dataset(
    "mnist", classes=MNIST_CLASSES, image_shape=(1, 28, 28), needs_root=True, layout=_MNIST.layout
)
def load_mnist(*, split: str, root: Path, download: bool = False) -> ImageDataset:
    """MNIST handwritten digits: ``(N, 1, 28, 28)`` float32 in [0, 1], classes ``'0'..'9'``.

    Args:
        split: ``"train"`` (``train-*`` files) or ``"test"`` (``t10k-*`` files).
        root: An existing data root (see the module docstring for the layouts).
        download: Fetch the files with torchvision first if the split's are missing.
    """
    return _load(_MNIST, split=split, root=root, download=download)


@register_dataset(
    "fashion-mnist",
    classes=FASHION_MNIST_CLASSES,
    image_shape=(1, 28, 28),
    needs_root=True,
    layout=_FASHION.layout,
)
def load_fashion_mnist(*, split: str, root: Path, download: bool = False) -> ImageDataset:
    """Fashion-MNIST: ``(N, 1, 28, 28)`` float32 in [0, 1], torchvision's 10 class names.

    Debian's ``dataset-fashion-mnist`` package re-compresses the ``.gz`` files: their md5
    differs (a :class:`ChecksumWarning`) while the decoded data is the original.

    Args:
        split: ``"train"`` (``train-*`` files) or ``"test"`` (``t10k-*`` files).
        root: An existing data root, e.g. ``/usr/share/datasets/fashion-mnist``.
        download: Fetch the files with torchvision first if the split's are missing.
    """
    return _load(_FASHION, split=split, root=root, download=download)
