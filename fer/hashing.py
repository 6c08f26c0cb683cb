"""Perceptual hashes of many faces at once, bit-for-bit as imagehash computes them.

imagehash hashes one PIL image at a time (its pHash calls scipy's DCT twice per image). Here
each image is reduced to the same small grayscale array imagehash builds (convert to L, then a
Lanczos resize), and the hash itself runs as one vectorised NumPy step for the whole batch:
the 2-D DCT-II as two matrix products keeping only the low frequencies.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
from PIL import Image

from fer.parallel import ordered_map
from fer.registry import Registry

__all__ = [
    "HASH_METHODS",
    "HashMethod",
    "hash_arrays",
    "hash_arrays_with_mirror",
    "hash_hex",
    "hash_image_bytes",
    "hash_size_of",
    "hashing_input",
    "view_crop",
]

_PHASH_FACTOR = 4  # imagehash's highfreq_factor
_BLOCK = 512


@dataclass(frozen=True)
class HashMethod:
    """A perceptual hash: the grayscale size it reads and its bits for a float stack."""

    name: str
    input_size: Callable[[int], tuple[int, int]]
    """hash_size -> (width, height) of the resized grayscale input."""
    bits: Callable[[np.ndarray, int], np.ndarray]
    """(n, h, w) float64 stack, hash_size -> (n, bits) booleans in imagehash's order."""
    bits_with_mirror: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]] | None = None
    """Optional: the bits of the stack and of its horizontal mirror from one computation."""


HASH_METHODS: Registry[HashMethod] = Registry("hash method")


def _dct_matrix(size: int, keep: int) -> np.ndarray:
    # scipy.fftpack.dct type II, unnormalised: y[k] = 2 sum_n x[n] cos(pi k (2n + 1) / 2N)
    n = np.arange(size)
    return 2 * np.cos(np.pi * np.arange(keep)[:, None] * (2 * n + 1) / (2 * size))


def _phash_low(pixels: np.ndarray, hash_size: int) -> np.ndarray:
    """(n, hash_size, hash_size) lowest DCT-II coefficients of each image."""
    matrix = _dct_matrix(pixels.shape[-1], hash_size)
    return matrix @ pixels @ matrix.T


def _median_bits(low: np.ndarray) -> np.ndarray:
    flat = low.reshape(len(low), low.shape[1] * low.shape[2])
    # np.median's value (the mean of the middle two), from one sort: several times faster
    # than its per-row partition on rows of 64.
    size = flat.shape[1]
    middle = np.sort(flat, axis=1)[:, (size - 1) // 2 : size // 2 + 1]
    return flat > middle.mean(axis=1, keepdims=True)


def _phash_bits(pixels: np.ndarray, hash_size: int) -> np.ndarray:
    return _median_bits(_phash_low(pixels, hash_size))


def _phash_bits_with_mirror(pixels: np.ndarray, hash_size: int) -> tuple[np.ndarray, np.ndarray]:
    # DCT-II of a reversed row: coefficient k changes sign when k is odd.
    low = _phash_low(pixels, hash_size)
    signs = np.where(np.arange(hash_size) % 2, -1.0, 1.0)
    return _median_bits(low), _median_bits(low * signs)


def _dhash_bits(pixels: np.ndarray, hash_size: int) -> np.ndarray:
    bits = pixels[:, :, 1:] > pixels[:, :, :-1]
    return bits.reshape(len(bits), bits.shape[1] * bits.shape[2])


def _ahash_bits(pixels: np.ndarray, hash_size: int) -> np.ndarray:
    flat = pixels.reshape(len(pixels), pixels.shape[1] * pixels.shape[2])
    return flat > flat.mean(axis=1, keepdims=True)


for _method in (
    HashMethod(
        "phash",
        lambda s: (s * _PHASH_FACTOR, s * _PHASH_FACTOR),
        _phash_bits,
        _phash_bits_with_mirror,
    ),
    HashMethod("dhash", lambda s: (s + 1, s), _dhash_bits),
    HashMethod("ahash", lambda s: (s, s), _ahash_bits),
):
    HASH_METHODS.register(_method.name, _method)


def hash_size_of(method: str, hash_size: int) -> tuple[int, int]:
    """(width, height) of the grayscale image each method hashes."""
    return HASH_METHODS[method].input_size(hash_size)


def view_crop(image: Image.Image, view: float) -> Image.Image:
    """The centred square of `view` times the shorter side (the image itself for view >= 1)."""
    if view >= 1.0:
        return image
    side = max(1.0, min(image.width, image.height) * view)
    left, top = (image.width - side) / 2, (image.height - side) / 2
    return image.crop((round(left), round(top), round(left + side), round(top + side)))


def hashing_input(image: Image.Image, method: str, hash_size: int, view: float = 1.0) -> np.ndarray:
    """The small grayscale array a hash is computed from; `view` < 1 keeps a centred square."""
    image = view_crop(image, view)
    resized = image.convert("L").resize(hash_size_of(method, hash_size), Image.Resampling.LANCZOS)
    return np.asarray(resized)


def hash_arrays(arrays: np.ndarray, method: str, hash_size: int) -> np.ndarray:
    """Hashes of a (n, h, w) uint8 stack from `hashing_input`, as (n, bits / 64) uint64 words.

    Bits are in imagehash's order (row-major, first bit most significant), so the hex of the
    words is imagehash's `str(hash)`.
    """
    hasher = HASH_METHODS[method]
    # Blocks of a few MB: large float temporaries are fresh pages (slow first touch) each time.
    return np.concatenate(
        [
            _pack(hasher.bits(arrays[start : start + _BLOCK].astype(np.float64), hash_size))
            for start in range(0, max(1, len(arrays)), _BLOCK)
        ]
    )


def hash_arrays_with_mirror(
    arrays: np.ndarray, method: str, hash_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """`hash_arrays` of a stack and of its horizontal mirror, in one pass where the method
    allows it (pHash: the mirror only flips the sign of odd horizontal frequencies)."""
    hasher = HASH_METHODS[method]
    direct, mirrored = [], []
    # One float buffer for every block: a fresh one per block costs its first-touch page
    # faults each time (as much as the DCT itself).
    buffer = np.empty((min(_BLOCK, len(arrays)), *arrays.shape[1:]))
    for start in range(0, max(1, len(arrays)), _BLOCK):
        block = arrays[start : start + _BLOCK]
        pixels = buffer[: len(block)]
        np.copyto(pixels, block)
        if hasher.bits_with_mirror is None:
            bits = hasher.bits(pixels, hash_size), hasher.bits(pixels[:, :, ::-1], hash_size)
        else:
            bits = hasher.bits_with_mirror(pixels, hash_size)
        direct.append(_pack(bits[0]))
        mirrored.append(_pack(bits[1]))
    return np.concatenate(direct), np.concatenate(mirrored)


def _pack(bits: np.ndarray) -> np.ndarray:
    packed = np.packbits(bits, axis=1)
    padding = (-packed.shape[1]) % 8
    if padding:
        packed = np.pad(packed, ((0, 0), (padding, 0)))
    return packed.view(">u8").astype(np.uint64)


def hash_hex(words: np.ndarray, bits: int) -> list[str]:
    """imagehash-style hex strings of hash words."""
    width = (bits + 3) // 4
    return [row.astype(">u8").tobytes().hex()[-width:] for row in np.atleast_2d(words)]


def _input_from_bytes(item: tuple[bytes, float], method: str, hash_size: int) -> np.ndarray:
    data, view = item
    with Image.open(io.BytesIO(data)) as image:
        return hashing_input(image, method, hash_size, view)


def hash_image_bytes(
    images: Sequence[bytes],
    views: Sequence[float],
    method: str,
    hash_size: int,
    workers: int = 1,
) -> np.ndarray:
    """Hash encoded images (decoding and resizing spread over `workers` processes)."""
    work = partial(_input_from_bytes, method=method, hash_size=hash_size)
    items = list(zip(images, views, strict=True))
    arrays = list(ordered_map(work, items, workers, chunksize=512, serial_below=2048))
    width, height = hash_size_of(method, hash_size)
    stack = np.stack(arrays) if arrays else np.zeros((0, height, width), np.uint8)
    return hash_arrays(stack, method, hash_size)
