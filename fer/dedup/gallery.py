"""A picture of the largest duplicate groups: faces side by side with source and label."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fer.sheet import contact_sheet, thumbnail

__all__ = ["duplicate_gallery", "related_gallery_picture"]

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
        kind = {"exact": "exact copies", "near": "near copies", "mirror": "mirrored copies"}
        title = f"{group}: {row['dup_group_size']} images, {kind.get(row['dup_kind'], row['dup_kind'])}{flags}"
        tiles = [
            (group, caption, thumbnail(data, _TILE))
            for caption, data in images.get(group, [])[:_PER_GROUP]
        ]
        panels.append((title, tiles))
    if not panels:
        panels = [("no duplicate groups", [])]
    contact_sheet(panels, path, _TILE)


def related_gallery_picture(
    images: dict[str, list[tuple[str, bytes]]], order: list[str], meta: pd.DataFrame, path: Path
) -> None:
    """Write one panel per related group in `order`: different photographs of one face that
    the split keeps together (captions give source and label)."""
    info = meta.groupby("related_group").agg(
        size=("id", "size"), copies=("dup_group", "nunique"), labels=("label", "nunique")
    )
    panels = []
    for group in order:
        row = info.loc[group]
        title = (
            f"{group}: {row['size']} images, {row['copies']} distinct photos, "
            f"{row['labels']} labels"
        )
        tiles = [
            (group, caption, thumbnail(data, _TILE))
            for caption, data in images.get(group, [])[:_PER_GROUP]
        ]
        panels.append((title, tiles))
    if not panels:
        panels = [("no related groups", [])]
    contact_sheet(panels, path, _TILE)
