"""Contact sheets: labelled grids of thumbnails, one panel per group, and the thumbnails."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["contact_sheet", "thumbnail"]

_COLUMNS = 10
_CAPTION = 12
_HEADER = 22


def thumbnail(image: np.ndarray | bytes, tile: int) -> np.ndarray:
    """An RGB thumbnail fitting a `tile` square, from pixels or encoded image bytes."""
    if isinstance(image, bytes):
        with Image.open(io.BytesIO(image)) as decoded:
            if decoded.format == "JPEG":
                decoded.draft("RGB", (tile, tile))  # a large photo decodes at 1/2^k size
            picture = decoded.convert("RGB")
    else:
        picture = Image.fromarray(image).convert("RGB")
    picture.thumbnail((tile, tile), Image.Resampling.BILINEAR)
    return np.asarray(picture)


def contact_sheet(
    panels: Sequence[tuple[str, Sequence[tuple[str, str, np.ndarray]]]], path: Path, tile: int
) -> None:
    """Write a PNG of panels, each a title over tiles of (id, caption, RGB thumbnail)."""
    width = _COLUMNS * (tile + 4) + 4
    heights = [
        _HEADER + max(1, -(-len(items) // _COLUMNS)) * (tile + _CAPTION + 4) for _, items in panels
    ]
    sheet = Image.new("RGB", (width, sum(heights)), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    top = 0
    for (title, items), height in zip(panels, heights, strict=True):
        draw.text((4, top + 5), f"{title} ({len(items)})", fill=(20, 20, 20))
        if not items:
            draw.text((4, top + _HEADER + 4), "none", fill=(120, 120, 120))
        for index, (_, caption, thumb) in enumerate(items):
            x = 4 + (index % _COLUMNS) * (tile + 4)
            y = top + _HEADER + (index // _COLUMNS) * (tile + _CAPTION + 4)
            image = Image.fromarray(thumb)
            sheet.paste(image, (x + (tile - image.width) // 2, y + (tile - image.height) // 2))
            draw.text((x, y + tile), caption[:12], fill=(90, 90, 90))
        top += height
    sheet.save(path, format="PNG")
