"""A picture of the largest duplicate groups: faces side by side with source and label."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fer.sheet import contact_sheet, thumbnail

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
            (group, caption, thumbnail(data, _TILE))
            for caption, data in images.get(group, [])[:_PER_GROUP]
        ]
        panels.append((title, tiles))
    if not panels:
        panels = [("no duplicate groups", [])]
    contact_sheet(panels, path, _TILE)
