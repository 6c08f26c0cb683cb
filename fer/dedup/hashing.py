"""Perceptual hashes of many faces at once, bit-for-bit as imagehash computes them.

imagehash hashes one PIL image at a time (its pHash calls scipy's DCT twice per image). Here
each image is reduced to the same small grayscale array imagehash builds (convert to L, then a
Lanczos resize), and the hash itself runs as one vectorised NumPy step for the whole batch:
the 2-D DCT-II as two matrix products keeping only the low frequencies.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import numpy as np
from PIL import Image

__all__ = [
    "HASH_METHODS",
    "hash_arrays",
    "hash_hex",
    "hash_image_bytes",
    "hash_size_of",
    "hashing_input",
]

HASH_METHODS = ("phash", "dhash", "ahash")
_PHASH_FACTOR = 4  # imagehash's highfreq_factor


def hash_size_of(method: str, hash_size: int) -> tuple[int, int]:
    """(width, height) of the grayscale image each method hashes."""
    if method == "phash":
        return hash_size * _PHASH_FACTOR, hash_size * _PHASH_FACTOR
    if method == "dhash":
        return hash_size + 1, hash_size
    return hash_size, hash_size


def hashing_input(image: Image.Image, method: str, hash_size: int, view: float = 1.0) -> np.ndarray:
    """The small grayscale array a hash is computed from; `view` < 1 keeps a centred square."""
    if view < 1.0:
        side = max(1.0, min(image.width, image.height) * view)
        left, top = (image.width - side) / 2, (image.height - side) / 2
        image = image.crop((round(left), round(top), round(left + side), round(top + side)))
    resized = image.convert("L").resize(hash_size_of(method, hash_size), Image.Resampling.LANCZOS)
    return np.asarray(resized)


def _dct_matrix(size: int, keep: int) -> np.ndarray:
    # scipy.fftpack.dct type II, unnormalised: y[k] = 2 sum_n x[n] cos(pi k (2n + 1) / 2N)
    n = np.arange(size)
    return 2 * np.cos(np.pi * np.arange(keep)[:, None] * (2 * n + 1) / (2 * size))


def hash_arrays(arrays: np.ndarray, method: str, hash_size: int) -> np.ndarray:
    """Hashes of a (n, h, w) uint8 stack from `hashing_input`, as (n, bits / 64) uint64 words.

    Bits are in imagehash's order (row-major, first bit most significant), so the hex of the
    words is imagehash's `str(hash)`.
    """
    pixels = arrays.astype(np.float64)
    n = len(pixels)
    if method == "phash":
        matrix = _dct_matrix(hash_size * _PHASH_FACTOR, hash_size)
        low = (matrix @ pixels @ matrix.T).reshape(n, -1)
        bits = low > np.median(low, axis=1, keepdims=True)
    elif method == "dhash":
        bits = (pixels[:, :, 1:] > pixels[:, :, :-1]).reshape(n, -1)
    elif method == "ahash":
        flat = pixels.reshape(n, -1)
        bits = flat > flat.mean(axis=1, keepdims=True)
    else:
        raise ValueError(f"unknown hash method {method!r}; use one of {HASH_METHODS}")
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
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(items) < 2048:
        arrays = list(map(work, items))
    else:
        with ProcessPoolExecutor(workers) as pool:
            arrays = list(pool.map(work, items, chunksize=512))
    width, height = hash_size_of(method, hash_size)
    stack = np.stack(arrays) if arrays else np.zeros((0, height, width), np.uint8)
    return hash_arrays(stack, method, hash_size)
