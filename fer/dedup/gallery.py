"""A picture of the largest duplicate groups: faces side by side with source and label."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from fer.crop.sheet import contact_sheet

__all__ = ["duplicate_gallery"]

_TILE = 72
_PER_GROUP = 10


def duplicate_gallery(
    images: dict[str, list[tuple[str, bytes]]], order: list[str], meta: pd.DataFrame, path: Path
) -> None:
    """Write one panel per group in `order` (largest first) to a PNG."""
    info = meta.drop_duplicates("dup_group").set_index("dup_group")
    panels = []
    for group in order:
        row = info.loc[group]
        flags = ", labels disagree" if row["label_conflict"] else ""
        title = f"{group}: {row['dup_group_size']} images, {row['dup_kind']}{flags}"
        tiles = [
            (group, caption, _thumbnail(data))
            for caption, data in images.get(group, [])[:_PER_GROUP]
        ]
        panels.append((title, tiles))
    if not panels:
        panels = [("no duplicate groups", [])]
    contact_sheet(panels, path, _TILE)


def _thumbnail(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
        rgb.thumbnail((_TILE, _TILE), Image.Resampling.BILINEAR)
        return np.asarray(rgb)
