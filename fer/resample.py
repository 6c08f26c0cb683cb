"""Pillow's `Image.resize` of many same-sized square grey images at once, bit-for-bit.

Pillow resizes 8-bit images in two passes (for squares: horizontal, then vertical), each a sum of
fixed-point coefficients (22 fractional bits) times pixels, rounded and clipped back to 8 bits.
Here each pass is one matrix product over the whole stack. The products are integers below
2^31, which float64 holds exactly, so the result is Pillow's to the bit (the coefficients are
computed with Pillow's own formulas and rounding, in the same order). The dedup stage resizes
every frame and face to several small hash inputs; one product for a stack of frames replaces
thousands of small Pillow calls. Only squares: for other shapes Pillow 13 sometimes runs the
vertical pass first (its rule is not reproduced here), and its bytes depend on that order.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["FILTERS", "resize_stack"]

_PRECISION_BITS = 32 - 8 - 2  # Pillow's Resample.c
_ROUND = float(1 << (_PRECISION_BITS - 1))
_UNIT = float(1 << _PRECISION_BITS)


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x *= math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    return _sinc(x) * _sinc(x / 3) if -3.0 <= x < 3.0 else 0.0


def _bilinear(x: float) -> float:
    x = -x if x < 0.0 else x
    return 1.0 - x if x < 1.0 else 0.0


FILTERS: dict[str, tuple[Callable[[float], float], float]] = {
    "lanczos": (_lanczos, 3.0),
    "bilinear": (_bilinear, 1.0),
}
"""Pillow resampling filters reproduced here: name -> (filter, support)."""


@functools.cache
def _coefficients(in_size: int, out_size: int, method: str) -> np.ndarray:
    """(out_size, in_size) fixed-point coefficients as Pillow's precompute_coeffs and
    normalize_coeffs_8bpc compute them (scalar loops: the same double roundings)."""
    kernel, base_support = FILTERS[method]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = base_support * filterscale
    inverse = 1.0 / filterscale
    matrix = np.zeros((out_size, in_size))
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        weights = [kernel((x + xmin - center + 0.5) * inverse) for x in range(xmax)]
        total = 0.0
        for weight in weights:
            total += weight
        for x, weight in enumerate(weights):
            value = weight / total if total != 0.0 else weight
            matrix[xx, xmin + x] = (
                int(value * _UNIT - 0.5) if value < 0 else int(value * _UNIT + 0.5)
            )
    return matrix


def _settle(sums: np.ndarray) -> np.ndarray:
    # Pillow's clip8: (sum + half) >> PRECISION_BITS, clipped to 0..255 (floor of an exact
    # division by a power of two, so an arithmetic shift of the integer sum).
    sums += _ROUND
    sums *= 1.0 / _UNIT
    np.floor(sums, out=sums)
    return np.clip(sums, 0.0, 255.0, out=sums)


def resize_stack(
    images: np.ndarray, sizes: Sequence[tuple[int, int]], method: str
) -> list[np.ndarray]:
    """`Image.fromarray(image).resize(size, filter)` for every square uint8 image of an
    (n, side, side) stack and every square (side, side) in `sizes`: one (n, side, side) uint8
    array per size, equal to Pillow's output bit for bit. `method`: a key of FILTERS."""
    count, height, width = images.shape
    if height != width or any(w != h for w, h in sizes):
        raise ValueError(
            f"resize_stack reproduces Pillow for squares only, not {images.shape[1:]} to {list(sizes)}"
        )
    # Horizontal pass for every size at once: (n * h, w) @ (w, sum of widths).
    across = np.concatenate([_coefficients(width, w, method) for w, _ in sizes])
    rows = _settle(images.reshape(count * height, width).astype(np.float64) @ across.T)
    out, first = [], 0
    for out_width, out_height in sizes:
        part = rows[:, first : first + out_width].reshape(count, height, out_width)
        first += out_width
        down = _coefficients(height, out_height, method)
        resized = _settle(np.matmul(down, part))
        out.append(resized.astype(np.uint8))
    return out
