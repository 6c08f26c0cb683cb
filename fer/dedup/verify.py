"""Deciding hash candidates: the same photograph, or another photograph of the same face?

Hashes find candidates fast but a 64-bit pHash cannot tell a smile from a re-encode. Each
candidate pair is decided on small grey views of the two faces brought into the same frame:
view B is searched over scale and shift (and mirrored for mirror candidates) for the placement
that best matches the centre of view A, and the best normalised cross-correlation (NCC)
decides. NCC ignores brightness and contrast; the search absorbs resizing and re-cropping by a
few percent; the 24 px window keeps JPEG and resampling noise small while an expression change
(mouth, brows, eyes) still costs correlation. `benchmarks/dedup_pairs.py` measures it.

The search runs in float32 (BLAS products and FFT correlations); a score that lands within
`_MARGIN` of a threshold it is compared with is computed again in float64, so which side of a
threshold a pair falls on does not depend on the machine's rounding.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = [
    "VIEW_SIDE",
    "grey_view",
    "pair_similarity",
    "resize_matrix",
    "similarities",
    "verification_view",
]

WINDOW = 24
"""Side of the compared centre of view A."""
SHIFT = 5
"""Largest shift searched, in pixels of the window (about 20 % of it)."""
VIEW_SIDE = WINDOW + 2 * SHIFT
SCALES = (0.86, 0.89, 0.92, 0.95, 0.98, 1.0, 1.02, 1.05, 1.08, 1.11, 1.14, 1.17)
"""Scales of view B searched (the screening scales among them)."""
_QUICK = 0.985
"""A match this good (aligned, or at a screening scale) is taken as found: searching further
could only raise a score that already passes."""
_SCREEN = (0.89, 1.0, 1.11)
_PROMISING = 0.80
"""Pairs whose best shifted match at the three screening scales stays below this are not
searched at the other scales: a copy resized or re-cropped by up to 15 % correlates far above
it at one of them (at scale 1 alone, 10 % re-crops fell below it)."""
_MARGIN = 2e-4
"""float32 scores this close to a threshold are recomputed in float64 (float32 scores are
within 2e-5 of float64 ones on the 69,012 compared FER2013 pairs)."""
_FFT_SIDE = 36
"""FFT size of the correlations: at least the largest searched region (VIEW_SIDE), so the
circular correlation's valid shifts never wrap, and a fast size (2^2 3^2)."""


def verification_view(data: bytes, view: float = 1.0) -> np.ndarray:
    """The grey VIEW_SIDE x VIEW_SIDE view of encoded image bytes (a centred square of
    `view` times the shorter side, as the face hash sees it)."""
    with Image.open(io.BytesIO(data)) as image:
        return grey_view(image.convert("L"), view)


def grey_view(grey: Image.Image, view: float = 1.0) -> np.ndarray:
    """`verification_view` of an already decoded grey ("L") image."""
    side = max(1.0, min(grey.width, grey.height) * min(view, 1.0))
    left, top = (grey.width - side) / 2, (grey.height - side) / 2
    grey = grey.crop((round(left), round(top), round(left + side), round(top + side)))
    resized = grey.resize((VIEW_SIDE, VIEW_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def similarities(
    views: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    mirror: np.ndarray,
    thresholds: Sequence[float] = (),
) -> np.ndarray:
    """Best NCC (float64) of each pair k: the centre of views[first[k]] searched for in
    views[second[k]], flipped where mirror[k]; `views` is (rows, VIEW_SIDE, VIEW_SIDE) uint8.
    Scores near one of `thresholds`, or near the search's own cut-offs, are computed in
    float64, so comparing them with those thresholds gives the same answer everywhere. Each
    distinct (second, mirror) view is resized and transformed once per call, however many
    pairs share it: sort the pairs by it before batching."""
    first, second = np.asarray(first, np.int64), np.asarray(second, np.int64)
    mirror = np.asarray(mirror, dtype=bool)
    if len(first) == 0:
        return np.zeros(0)
    best, unsure = _best(views, first, second, mirror, np.float32, thresholds)
    if unsure.any():
        best[unsure] = _best(views, first[unsure], second[unsure], mirror[unsure], np.float64, ())[
            0
        ]
    return best


def pair_similarity(
    views_a: np.ndarray,
    views_b: np.ndarray,
    mirror: np.ndarray,
    thresholds: Sequence[float] = (),
) -> np.ndarray:
    """`similarities` of pairs given as two aligned (n, VIEW_SIDE, VIEW_SIDE) stacks."""
    n = len(views_a)
    views = np.concatenate([np.asarray(views_a), np.asarray(views_b)])
    return similarities(views, np.arange(n), n + np.arange(n), mirror, thresholds)


def _near(scores: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    near = np.zeros(len(scores), bool)
    for threshold in thresholds:
        near |= np.abs(scores - threshold) < _MARGIN
    return near


def _best(
    views: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    mirror: np.ndarray,
    dtype: type,
    thresholds: Sequence[float],
) -> tuple[np.ndarray, np.ndarray]:
    """Best NCC per pair computed in `dtype` (as float64), and which scores came within
    _MARGIN of a threshold or cut-off on the way."""
    a_rows, a_of = np.unique(first, return_inverse=True)
    b_keys, b_of = np.unique(second * 2 + mirror, return_inverse=True)
    middle = slice(SHIFT, SHIFT + WINDOW)
    centre = _normalised(views[a_rows][:, middle, middle].astype(dtype))
    b = views[b_keys // 2].astype(dtype)
    flip = (b_keys % 2).astype(bool)
    b[flip] = b[flip, :, ::-1]
    # NCC ignores an offset of view B: centring it keeps float32 window variances accurate.
    b -= b.mean(axis=(-2, -1), keepdims=True)
    other = _normalised(b[:, middle, middle])
    best = np.einsum("nij,nij->n", centre[a_of], other[b_of]).astype(np.float64) / WINDOW**2
    unsure = _near(best, (_QUICK,))
    todo = np.flatnonzero(best < _QUICK)
    if len(todo):
        # The centres' spectra, transposed as the regions are (see _searched).
        spectra = _spectra(centre, 1)
        found = _searched(spectra, a_of[todo], b, b_of[todo], _SCREEN)
        best[todo] = np.maximum(best[todo], found)
        unsure[todo] |= _near(best[todo], (_PROMISING, _QUICK))
        todo = todo[(best[todo] >= _PROMISING) & (best[todo] < _QUICK)]
    if len(todo):
        rest = tuple(scale for scale in SCALES if scale not in _SCREEN)
        best[todo] = np.maximum(best[todo], _searched(spectra, a_of[todo], b, b_of[todo], rest))
    unsure |= _near(best, thresholds)
    return best, unsure


def _normalised(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=(-2, -1), keepdims=True)
    return x / (np.sqrt((x * x).mean(axis=(-2, -1), keepdims=True)) + 1e-6)


@functools.cache
def resize_matrix(side: int, size: int = VIEW_SIDE) -> np.ndarray:
    """(side, size) float64 matrix R that resizes: R @ x @ R.T is the (size, size) image x
    resized to (side, side), bilinear (half-pixel centres), antialiased when shrinking with
    the triangle filter widened by the scale, as Pillow and torch's `F.interpolate(...,
    antialias=True)` compute it."""
    scale = size / side
    matrix = np.zeros((side, size))
    if side < size:
        for row in range(side):
            centre = scale * (row + 0.5)
            low = max(int(centre - scale + 0.5), 0)
            high = min(int(centre + scale + 0.5), size)
            weights = np.maximum(0.0, 1 - np.abs((np.arange(low, high) - centre + 0.5) / scale))
            matrix[row, low:high] = weights / weights.sum()
        return matrix
    source = np.maximum(scale * (np.arange(side) + 0.5) - 0.5, 0.0)
    low = np.floor(source).astype(np.int64)
    fraction = source - low
    np.add.at(matrix, (np.arange(side), low), 1 - fraction)
    np.add.at(matrix, (np.arange(side), np.minimum(low + 1, size - 1)), fraction)
    return matrix


@functools.cache
def _window_sums(size: int, k: int) -> np.ndarray:
    """(size - k + 1, size) band of ones: B @ x @ B.T sums every k x k window of x."""
    rows = np.arange(size - k + 1)[:, None]
    columns = np.arange(size)[None, :]
    return ((columns >= rows) & (columns < rows + k)).astype(np.float64)


@functools.cache
def _searched_rows(scale: float, dtype: type) -> np.ndarray:
    """The rows of the resize matrix to `scale` that the shift search reads."""
    side = round(VIEW_SIDE * scale)
    low = max(0, side // 2 - WINDOW // 2 - SHIFT)
    high = min(side - WINDOW, side // 2 - WINDOW // 2 + SHIFT)
    return np.ascontiguousarray(resize_matrix(side)[low : high + WINDOW], dtype=dtype)


@functools.cache
def _forward_matrices(dtype: type, length: int, sign: int) -> tuple[np.ndarray, np.ndarray]:
    """The DFT (`_FFT_SIDE` points, exponent sign `sign`: +1 gives the conjugated spectrum) of
    a zero-padded (length, length) image as two matrices: over its rows, real in and
    interleaved complex out ((length, 2 * half), the halved axis), and over its columns
    ((length, _FFT_SIDE) complex). Products of a few dozen columns use the cores far better
    than batches of tiny FFTs over strided axes."""
    size, half = _FFT_SIDE, _FFT_SIDE // 2 + 1
    rows = np.exp(sign * 2j * np.pi * np.outer(np.arange(length), np.arange(half)) / size)
    rows_real = np.empty((length, 2 * half))
    rows_real[:, 0::2], rows_real[:, 1::2] = rows.real, rows.imag
    columns = np.exp(sign * 2j * np.pi * np.outer(np.arange(length), np.arange(size)) / size)
    return rows_real.astype(dtype), columns.astype(_complex(dtype))


@functools.cache
def _backward_matrices(dtype: type, shifts: int) -> tuple[np.ndarray, np.ndarray]:
    """The inverse DFT to the first `shifts` shifts only, as two matrices: over the full axis
    ((_FFT_SIDE, shifts) complex), then over the halved one ((2 * half, shifts) real, reading
    interleaved complex, with the Hermitian weights of a real inverse)."""
    size, half = _FFT_SIDE, _FFT_SIDE // 2 + 1
    frequency = np.arange(half)
    full = np.exp(2j * np.pi * np.outer(np.arange(size), np.arange(shifts)) / size) / size
    weight = np.where((frequency == 0) | (frequency == size // 2), 1.0, 2.0)[:, None]
    angle = 2 * np.pi * np.outer(frequency, np.arange(shifts)) / size
    halved = np.empty((2 * half, shifts))
    halved[0::2], halved[1::2] = weight * np.cos(angle) / size, -weight * np.sin(angle) / size
    return full.astype(_complex(dtype)), halved.astype(dtype)


def _complex(dtype: type) -> type:
    return np.complex64 if np.dtype(dtype) == np.float32 else np.complex128


def _spectra(images: np.ndarray, sign: int) -> np.ndarray:
    """(n, half, _FFT_SIDE) spectra of the transposes of (n, k, k) images zero-padded to
    _FFT_SIDE: halved over the transposes' rows, full over their columns; `sign` +1 gives
    them conjugated."""
    count, length = len(images), images.shape[-1]
    rows, columns = _forward_matrices(images.dtype.type, length, sign)
    half = _FFT_SIDE // 2 + 1
    # A transpose's rows are the image's columns: the last axis, a plain product.
    flat = np.ascontiguousarray(images).reshape(count * length, length)
    over_rows = (flat @ rows).view(columns.dtype).reshape(count, length, half)
    over_rows = np.ascontiguousarray(over_rows.transpose(0, 2, 1))
    return (over_rows.reshape(count * half, length) @ columns).reshape(count, half, _FFT_SIDE)


_PAIR_BLOCK = 256
"""Pairs whose spectra products are transformed back at once (a few MB: they stay in cache)."""


def _searched(
    spectra: np.ndarray,
    a_of: np.ndarray,
    views: np.ndarray,
    b_of: np.ndarray,
    scales: tuple[float, ...],
) -> np.ndarray:
    """Best NCC of each pair (centre spectra[a_of], view views[b_of]) over every searched
    shift of the view resized to each scale; each view used is resized once per scale."""
    used, b_of = np.unique(b_of, return_inverse=True)
    views = views[used]
    count, n, dtype = len(views), len(a_of), views.dtype
    best = np.full(n, -1.0)
    area = WINDOW * WINDOW
    half = _FFT_SIDE // 2 + 1
    flat = views.reshape(count * VIEW_SIDE, VIEW_SIDE)
    for scale in scales:
        rows = _searched_rows(scale, dtype)
        height = len(rows)
        # Two single products over all views: (V R^T)^T R^T = (R V R^T)^T, the region
        # transposed; the centres' spectra are transposed to match.
        half_region = (flat @ rows.T).reshape(count, VIEW_SIDE, height).transpose(0, 2, 1)
        region = (np.ascontiguousarray(half_region).reshape(-1, VIEW_SIDE) @ rows.T).reshape(
            count, height, height
        )
        band = _window_sums(height, WINDOW).astype(dtype)
        sums = band @ region @ band.T
        squares = band @ (region * region) @ band.T
        std = np.sqrt(np.maximum(squares - sums * sums / area, 0) / area) + 1e-6
        shifts = len(band)
        back, back_half = _backward_matrices(dtype.type, shifts)
        spectrum = _spectra(region.transpose(0, 2, 1), -1)
        # The correlations come back (x, y): the scale per shift laid out the same way.
        scale_of = np.ascontiguousarray((1.0 / (std * area)).transpose(0, 2, 1))
        for first in range(0, n, _PAIR_BLOCK):
            pairs = slice(first, first + _PAIR_BLOCK)
            of_b = b_of[pairs]
            m = len(of_b)
            product = spectra[a_of[pairs]] * spectrum[of_b]
            # Back over the full axis, then the halved one: (m, half, x), then (m, x, y).
            partial = (product.reshape(m * half, _FFT_SIDE) @ back).reshape(m, half, shifts)
            partial = np.ascontiguousarray(partial.transpose(0, 2, 1)).view(dtype)
            correlation = (partial.reshape(m * shifts, 2 * half) @ back_half).reshape(
                m, shifts * shifts
            )
            correlation *= scale_of[of_b].reshape(m, -1)
            best[pairs] = np.maximum(best[pairs], correlation.max(axis=1))
    return best
