"""Choosing a face among several and cutting a square, optionally eye-levelled, crop."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = [
    "CropWindow",
    "crop_window",
    "cut_crop",
    "fit_window",
    "quantise",
    "select_face",
    "synthesized_share",
    "window_region",
]


@dataclass(frozen=True)
class CropWindow:
    """A square in the source image: centre, side length and rotation (degrees, eyes level)."""

    cx: float
    cy: float
    side: float
    angle: float


def select_face(
    boxes: np.ndarray,
    scores: np.ndarray,
    width: int,
    height: int,
    how: str,
    min_score: float = 0.0,
) -> int:
    """Index of the face to keep among `boxes` (x1, y1, x2, y2), by the rule `how`, among the
    faces scoring at least `min_score` when there are any (else among all): a large, doubtful
    box does not hide a confident face."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    if how == "largest":
        merit = area
    elif how == "score":
        merit = scores
    elif how == "center":
        centre_x = (boxes[:, 0] + boxes[:, 2]) / 2 - width / 2
        centre_y = (boxes[:, 1] + boxes[:, 3]) / 2 - height / 2
        merit = -(centre_x**2 + centre_y**2)
    else:
        merit = area * scores
    merit = np.asarray(merit, dtype=np.float64)
    confident = np.asarray(scores) >= min_score
    if confident.any():
        merit = np.where(confident, merit, -np.inf)
    return int(np.argmax(merit))


def crop_window(
    box: np.ndarray, margin: float, landmarks: np.ndarray | None = None, align: bool = False
) -> CropWindow:
    """The square around `box` grown by `margin` per side, rotated to level the eyes if asked."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    angle = 0.0
    if align and landmarks is not None:
        (left_x, left_y), (right_x, right_y) = landmarks[0], landmarks[1]
        angle = math.degrees(math.atan2(right_y - left_y, right_x - left_x))
    return CropWindow((x1 + x2) / 2, (y1 + y2) / 2, max(side, 1.0), round(angle, 3))


def quantise(values: np.ndarray, step: float = 0.125) -> np.ndarray:
    """Detector coordinates on a 1/8 px grid: float noise between machines (a box moved by
    1e-4 px) no longer changes which pixels are cut, so crop bytes reproduce."""
    return np.round(np.asarray(values, dtype=np.float64) / step) * step


def _half_extent(window: CropWindow) -> float:
    theta = math.radians(window.angle)
    return window.side / 2 * (abs(math.cos(theta)) + abs(math.sin(theta)))


def fit_window(window: CropWindow, width: int, height: int) -> CropWindow:
    """The window shifted, then shrunk if it must be, to lie inside a width x height frame,
    so that no output pixel is synthesized."""
    half = _half_extent(window)
    limit = min(width, height) / 2
    side = window.side if half <= limit else window.side * limit / half
    half = min(half, limit)
    cx = min(max(window.cx, half), width - half)
    cy = min(max(window.cy, half), height - half)
    return CropWindow(cx, cy, max(side, 1.0), window.angle)


def synthesized_share(window: CropWindow, width: int, height: int) -> float:
    """Share of the window's area outside the frame (exact for unrotated windows, the
    rotated window's bounding square otherwise)."""
    half = _half_extent(window)
    overlap_x = max(0.0, min(window.cx + half, width) - max(window.cx - half, 0.0))
    overlap_y = max(0.0, min(window.cy + half, height) - max(window.cy - half, 0.0))
    return max(0.0, 1.0 - overlap_x * overlap_y / (2 * half) ** 2)


def window_region(
    window: CropWindow, width: int, height: int, output_size: int | None
) -> tuple[int, int, int, int]:
    """The part of a width x height image that `cut_crop` reads for `window` (left, top,
    right, bottom): its bounding box plus the resampler's reach, clipped to the image, with
    the corner on the grid of `cut_crop`'s box-filter reduction so the result is the same as
    from the whole image."""
    out = output_size or max(1, round(window.side))
    factor = int(window.side / out) if window.side / out >= 2 else 1
    reach = _half_extent(window) + 3 * factor
    left = max(0, math.floor((window.cx - reach) / factor) * factor)
    top = max(0, math.floor((window.cy - reach) / factor) * factor)
    right = min(width, math.ceil(window.cx + reach))
    bottom = min(height, math.ceil(window.cy + reach))
    if right <= left or bottom <= top:
        return 0, 0, width, height
    return left, top, right, bottom


def cut_crop(
    pixels: np.ndarray, window: CropWindow, output_size: int | None, border: str
) -> np.ndarray:
    """Resample `window` of `pixels` (H x W or H x W x 3 uint8) into a square array (a
    whole-pixel upright window at native size is copied, not resampled)."""
    out = output_size or max(1, round(window.side))
    left, top = window.cx - window.side / 2, window.cy - window.side / 2
    height, width = pixels.shape[:2]
    if (
        window.angle == 0
        and out == window.side
        and left == int(left)
        and top == int(top)
        and -out < left < width
        and -out < top < height
    ):
        return _copied(pixels, int(left), int(top), out, border)
    scale = window.side / out
    cx, cy = window.cx, window.cy
    image = pixels
    if scale >= 2 and window.angle != 0:
        # Box-filter down first: the affine resampler below does not antialias.
        factor = int(scale)
        image = np.asarray(Image.fromarray(pixels).reduce(factor))
        cx, cy, scale = cx / factor, cy / factor, scale / factor
    theta = math.radians(window.angle)
    cos, sin = math.cos(theta) * scale, math.sin(theta) * scale
    half = out / 2
    # Output (x, y) -> input: centre + x-axis along the eye line, y-axis perpendicular.
    origin_x = cx - half * cos + half * sin
    origin_y = cy - half * sin - half * cos
    corners_x = [origin_x + cos * u - sin * v for u in (0, out) for v in (0, out)]
    corners_y = [origin_y + sin * u + cos * v for u in (0, out) for v in (0, out)]
    height, width = image.shape[:2]
    # Resample from the window's neighbourhood only (bicubic reads 2 px around each sample),
    # not from a copy of the whole photo.
    left = max(0, math.floor(min(corners_x)) - 3)
    top = max(0, math.floor(min(corners_y)) - 3)
    right = min(width, math.ceil(max(corners_x)) + 3)
    bottom = min(height, math.ceil(max(corners_y)) + 3)
    if right > left and bottom > top and (left, top, right, bottom) != (0, 0, width, height):
        image = image[top:bottom, left:right]
        origin_x, origin_y = origin_x - left, origin_y - top
        corners_x = [x - left for x in corners_x]
        corners_y = [y - top for y in corners_y]
        height, width = image.shape[:2]
    overflow = max(
        0.0, -min(corners_x), -min(corners_y), max(corners_x) - width, max(corners_y) - height
    )
    pad = math.ceil(overflow) + 2 if overflow > 1e-6 else 0
    if pad:
        widths = ((pad, pad), (pad, pad)) + (((0, 0),) if image.ndim == 3 else ())
        mode = "constant" if border == "black" else "edge"
        image = np.pad(image, widths, mode=mode)
    source = Image.fromarray(image)
    if window.angle == 0:
        # Upright: Pillow's separable resize over the window samples the same points, with
        # Keys' bicubic (a = -0.5; antialiased when it shrinks), a quarter of the affine
        # transform's time (its bicubic is the sharper a = -1 and not separable).
        x0, y0 = origin_x + pad, origin_y + pad
        # Clamped only by the float noise the overflow test above lets through (< 1e-6 px).
        box = (
            max(0.0, x0),
            max(0.0, y0),
            min(float(source.width), x0 + out * scale),
            min(float(source.height), y0 + out * scale),
        )
        return np.asarray(source.resize((out, out), Image.Resampling.BICUBIC, box=box))
    result = source.transform(
        (out, out),
        Image.Transform.AFFINE,
        (cos, -sin, origin_x + pad, sin, cos, origin_y + pad),
        resample=Image.Resampling.BICUBIC,
    )
    return np.asarray(result)


def _copied(pixels: np.ndarray, left: int, top: int, side: int, border: str) -> np.ndarray:
    """The side x side square at (left, top) of `pixels`, which it overlaps; what lies outside
    the frame is filled as `border` says (black, else the edge pixels repeated)."""
    height, width = pixels.shape[:2]
    x1, y1 = max(left, 0), max(top, 0)
    x2, y2 = min(left + side, width), min(top + side, height)
    part = pixels[y1:y2, x1:x2]
    if (x1, y1, x2, y2) == (left, top, left + side, top + side):
        return np.ascontiguousarray(part)
    if border == "black":
        out = np.zeros((side, side, *pixels.shape[2:]), np.uint8)
        out[y1 - top : y2 - top, x1 - left : x2 - left] = part
        return out
    pads = ((y1 - top, top + side - y2), (x1 - left, left + side - x2))
    return np.pad(part, pads + ((0, 0),) * (pixels.ndim - 2), mode="edge")
