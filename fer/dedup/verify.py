"""Deciding hash candidates: the same photograph, or another photograph of the same face?

Hashes find candidates fast but a 64-bit pHash cannot tell a smile from a re-encode. Each
candidate pair is decided on small grey views of the two faces brought into the same frame:
view B is searched over scale and shift (and mirrored for mirror candidates) for the placement
that best matches the centre of view A, and the best normalised cross-correlation (NCC)
decides. NCC ignores brightness and contrast; the search absorbs resizing and re-cropping by a
few percent; the 24 px window keeps JPEG and resampling noise small while an expression change
(mouth, brows, eyes) still costs correlation. `benchmarks/dedup_pairs.py` measures it.
"""

from __future__ import annotations

import functools
import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = ["VIEW_SIDE", "grey_view", "pair_similarity", "verification_view"]

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


def _normalised(x: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    return x / (x.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt() + 1e-6)


def pair_similarity(views_a: np.ndarray, views_b: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Best NCC per pair of (n, VIEW_SIDE, VIEW_SIDE) uint8 views; `mirror` flips view B."""
    n = len(views_a)
    if n == 0:
        return np.zeros(0, np.float32)
    a = torch.from_numpy(views_a.astype(np.float32))
    b = torch.from_numpy(views_b.astype(np.float32))
    flip = torch.from_numpy(np.asarray(mirror, dtype=bool))
    b[flip] = b[flip].flip(-1)
    centre = _normalised(a[:, SHIFT : SHIFT + WINDOW, SHIFT : SHIFT + WINDOW])
    aligned = (centre * _normalised(b[:, SHIFT : SHIFT + WINDOW, SHIFT : SHIFT + WINDOW])).mean(
        dim=(-2, -1)
    )
    best = aligned.clone()
    todo = torch.nonzero(aligned < _QUICK).flatten()
    if len(todo):
        best[todo] = torch.maximum(best[todo], _searched(centre[todo], b[todo], _SCREEN))
        todo = todo[(best[todo] >= _PROMISING) & (best[todo] < _QUICK)]
    if len(todo):
        rest = tuple(scale for scale in SCALES if scale not in _SCREEN)
        best[todo] = torch.maximum(best[todo], _searched(centre[todo], b[todo], rest))
    return best.numpy()


@functools.cache
def _window_sums(size: int, k: int) -> torch.Tensor:
    """(size - k + 1, size) float64 band of ones: B @ x @ B.T sums every k x k window of x."""
    rows = torch.arange(size - k + 1)[:, None]
    columns = torch.arange(size)[None, :]
    return ((columns >= rows) & (columns < rows + k)).double()


def _box_sums(x: torch.Tensor, k: int) -> torch.Tensor:
    """Sums over every k x k window (stride 1) of (n, h, w), in float64, which holds these
    sums of float32 pixels exactly (the order of the additions cannot matter)."""
    band = _window_sums(x.shape[-1], k)
    return (band @ x.double() @ band.T).float()


@functools.cache
def _resize_rows(side: int, low: int, high: int) -> torch.Tensor:
    """Rows [low, high) of the (side, VIEW_SIDE) matrix that resizes a view's columns as
    `F.interpolate` (bilinear, antialiased when shrinking) does: a view resized to `side` is
    R @ view @ R.T, and only the searched rows and columns are computed."""
    basis = torch.eye(VIEW_SIDE)[None, None]  # resizing its height alone gives R itself
    resized = F.interpolate(
        basis,
        size=(side, VIEW_SIDE),
        mode="bilinear",
        align_corners=False,
        antialias=side < VIEW_SIDE,
    )
    return resized[0, 0, low:high].contiguous()


def _searched(centre: torch.Tensor, views: torch.Tensor, scales: tuple[float, ...]) -> torch.Tensor:
    # One grouped convolution per scale: kernel k is pair k's centre, its input pair k's view.
    n = len(centre)
    kernel = centre.unsqueeze(1)  # (n, 1, W, W)
    best = torch.full((n,), -1.0)
    area = WINDOW * WINDOW
    for scale in scales:
        side = round(VIEW_SIDE * scale)
        low = max(0, side // 2 - WINDOW // 2 - SHIFT)
        high = min(side - WINDOW, side // 2 - WINDOW // 2 + SHIFT)
        rows = _resize_rows(side, low, high + WINDOW)
        region = rows @ views @ rows.T
        sums = _box_sums(region, WINDOW)
        squares = _box_sums(region * region, WINDOW)
        std = ((squares - sums * sums / area).clamp_min(0) / area).sqrt() + 1e-6
        correlation = F.conv2d(region.reshape(1, n, *region.shape[-2:]), kernel, groups=n)
        ncc = correlation.reshape(n, -1) / (std.reshape(n, -1) * area)
        best = torch.maximum(best, ncc.max(dim=1).values)
    return best
