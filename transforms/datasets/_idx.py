"""The IDX file format of MNIST and Fashion-MNIST, gzipped or not.

An IDX file is a 4-byte big-endian magic number ``0x0000TTDD`` (``TT`` the element type,
``0x08`` = unsigned byte; ``DD`` the number of dimensions), then one big-endian ``uint32``
per dimension, then the elements in row-major order. Images are ``0x00000803``
(``N × rows × cols``), labels ``0x00000801`` (``N``). Files are recognised by content:
one that starts with the gzip signature is decompressed first, whatever its name.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import DatasetFormatError

__all__ = [
    "IDX_IMAGES_MAGIC",
    "IDX_LABELS_MAGIC",
    "parse_idx",
    "parse_idx_images",
    "parse_idx_labels",
]

IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801
_UBYTE = 0x08
_GZIP_SIGNATURE = b"\x1f\x8b"
_KINDS = {IDX_IMAGES_MAGIC: "images", IDX_LABELS_MAGIC: "labels"}
_REDOWNLOAD = "download it again, or pass download=True to fetch it with torchvision"


MAX_IDX_BYTES = 2**31
"""The largest IDX body this reader accepts (2 GiB; MNIST's training images are 47 MB)."""

_DEFLATE_MAX_RATIO = 1032  # the most a deflate stream can expand: 1032:1


def _dims(head: bytes, ndim: int) -> tuple[tuple[int, ...], int, str]:
    """An IDX header's dimensions, their product (the body's bytes) and ``"N × R × C"``."""
    dims = tuple(int(d) for d in np.frombuffer(head, dtype=">u4", count=ndim, offset=4))
    return dims, int(np.prod(dims, dtype=np.int64)), " × ".join(str(d) for d in dims)


def _gunzip(data: bytes, *, path: Path) -> bytes:
    """The decompressed IDX file, read only as far as its header says it reaches (plus one
    byte, to tell extra data): a gzip bomb is never inflated beyond a plausible size."""
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        return _inflate_bounded(stream, data, path=path)
    except zlib.error as exc:
        raise DatasetFormatError(
            f"{str(path)!r} starts like a gzip file but cannot be decompressed ({exc}); "
            f"{_REDOWNLOAD}",
            path=path,
        ) from exc


def _inflate_bounded(stream: Any, data: bytes, *, path: Path) -> bytes:
    out = stream.decompress(data, 4)
    if len(out) < 4 or out[:2] != b"\x00\x00":  # no IDX header: enough for parse_idx to say
        return out + stream.decompress(stream.unconsumed_tail, 64)
    header = 4 + 4 * out[3]
    out += stream.decompress(stream.unconsumed_tail, header - 4)
    if len(out) < header:  # a truncated header: parse_idx says so
        return out
    _, size, shape = _dims(out, out[3])
    if size > min(MAX_IDX_BYTES, _DEFLATE_MAX_RATIO * len(data)):
        raise DatasetFormatError(
            f"{str(path)!r} declares {shape} = {size:,} bytes of data, more than "
            f"{len(data):,} gzip bytes can hold or than this reader accepts "
            f"({MAX_IDX_BYTES:,}): it is not an IDX file we can read; {_REDOWNLOAD}",
            path=path,
        )
    out += stream.decompress(stream.unconsumed_tail, size + 1)
    if len(out) > header + size:
        raise DatasetFormatError(
            f"{str(path)!r} decompresses to more than the {shape} = {size:,} bytes its header "
            f"promises (decompression stopped there): it is not a valid IDX file; {_REDOWNLOAD}",
            path=path,
        )
    if len(out) < header + size and not stream.eof:
        raise DatasetFormatError(
            f"{str(path)!r} is a gzip file that ends early ({len(data)} bytes): it is "
            f"truncated (an interrupted download or copy); {_REDOWNLOAD}",
            path=path,
        )
    return out


def parse_idx(data: bytes, *, path: Path, magic: int) -> np.ndarray:
    """Decode one unsigned-byte IDX file (gzipped or not) and check its magic number.

    Args:
        data: The file's bytes as stored.
        path: The file, for messages.
        magic: The expected magic number, :data:`IDX_IMAGES_MAGIC` or :data:`IDX_LABELS_MAGIC`.

    Returns:
        A read-only ``uint8`` array with the header's shape.

    Raises:
        DatasetFormatError: not gzip-decodable, wrong magic number, or a body shorter
            (truncated) or longer than the header's dimensions promise.
    """
    if data[:2] == _GZIP_SIGNATURE:
        data = _gunzip(data, path=path)
    expected = f"IDX {_KINDS.get(magic, 'data')} file (magic number 0x{magic:08X})"
    if len(data) < 4:
        raise DatasetFormatError(
            f"{str(path)!r} holds {len(data)} bytes, too few for the 4-byte magic number of "
            f"an {expected}: it is empty or truncated; {_REDOWNLOAD}",
            path=path,
        )
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        if found in _KINDS:
            hint = (
                f"it is an IDX {_KINDS[found]} file: are the images and labels files swapped "
                "or misnamed?"
            )
        elif data[:2] != b"\x00\x00" or data[2] != _UBYTE:
            hint = "this is not an unsigned-byte IDX file"
        else:
            hint = f"the header says {data[3]} dimensions"
        raise DatasetFormatError(
            f"{str(path)!r} has magic number 0x{found:08X}, expected an {expected}; {hint}",
            path=path,
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetFormatError(
            f"{str(path)!r} holds {len(data)} bytes, too few for the {header}-byte header of "
            f"an {expected}: it is truncated; {_REDOWNLOAD}",
            path=path,
        )
    dims, size, shape = _dims(data, ndim)
    body = len(data) - header
    if body < size:
        raise DatasetFormatError(
            f"{str(path)!r} is truncated: its header promises {shape} = {size} bytes of data, "
            f"the file holds {body}; {_REDOWNLOAD}",
            path=path,
        )
    if body > size:
        raise DatasetFormatError(
            f"{str(path)!r} has {body - size} bytes after the {shape} = {size} bytes its "
            f"header promises: it is not a valid {expected}; {_REDOWNLOAD}",
            path=path,
        )
    return np.frombuffer(data, dtype=np.uint8, count=size, offset=header).reshape(dims)


def parse_idx_images(data: bytes, *, path: Path, size: tuple[int, int]) -> np.ndarray:
    """Decode an IDX images file into ``(N, rows, cols)`` uint8.

    Args:
        data: The file's bytes as stored (gzipped or not).
        path: The file, for messages.
        size: The expected ``(rows, cols)``, e.g. ``(28, 28)``.

    Raises:
        DatasetFormatError: see :func:`parse_idx`; or images of another size.
    """
    images = parse_idx(data, path=path, magic=IDX_IMAGES_MAGIC)
    if images.shape[1:] != tuple(size):
        raise DatasetFormatError(
            f"{str(path)!r} holds {images.shape[1]}×{images.shape[2]} images, expected "
            f"{size[0]}×{size[1]}: is it from another dataset?",
            path=path,
        )
    return images


def parse_idx_labels(data: bytes, *, path: Path, num_classes: int) -> np.ndarray:
    """Decode an IDX labels file into ``(N,)`` uint8 labels in ``[0, num_classes)``.

    Args:
        data: The file's bytes as stored (gzipped or not).
        path: The file, for messages.
        num_classes: Labels must be below this.

    Raises:
        DatasetFormatError: see :func:`parse_idx`; or a label out of range.
    """
    labels = parse_idx(data, path=path, magic=IDX_LABELS_MAGIC)
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        raise DatasetFormatError(
            f"{str(path)!r} has {bad.size} label(s) outside 0..{num_classes - 1}, the first "
            f"{int(labels[bad[0]])} at index {int(bad[0])}: it is corrupted or from another "
            f"dataset; {_REDOWNLOAD}",
            path=path,
        )
    return labels
