"""RAF-DB basic: `EmoLabel/list_patition_label.txt` and the aligned or original images.

Lines read `train_00001.jpg 5`; labels are 1-based: 1 surprise, 2 fear, 3 disgust,
4 happiness, 5 sadness, 6 anger, 7 neutral (preset `rafdb`). Aligned images carry an
`_aligned` suffix (`Image/aligned/train_00001_aligned.jpg`); original ones do not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from fer.errors import FerDataError
from fer.formats import RelativeInput, SourceParams, register_format
from fer.formats.common import (
    Kept,
    Listed,
    Refused,
    display_name,
    input_inside,
    load_listed,
    safe_relative_path,
)
from fer.images import Rejection
from fer.labels import register_preset

__all__ = ["RAFDB_LABELS", "RafDbSource", "read_rafdb"]

RAFDB_LABELS = ("surprise", "fear", "disgust", "happy", "sad", "angry", "neutral")
"""Canonical class of RAF-DB label 1, 2, ... 7."""


class RafDbSource(SourceParams):
    """RAF-DB basic emotion set: the partition/label list plus one image folder."""

    format_name: ClassVar[str] = "rafdb"
    default_preset: ClassVar[str] = "rafdb"
    labels: RelativeInput = "EmoLabel/list_patition_label.txt"
    """The label list inside `path` (RAF-DB's own spelling of 'partition')."""
    images: RelativeInput = "Image/aligned"
    """The image folder inside `path`: `Image/aligned` (100x100) or `Image/original`."""


def read_rafdb(
    source: RafDbSource, *, max_image_pixels: int, workers: int
) -> Iterator[Kept | Refused]:
    """One row per listed image, sorted by id; `source_split` is the name's prefix."""
    labels = input_inside(source.path, source.labels, f"sources.{source.name}.labels")
    images = input_inside(source.path, source.images, f"sources.{source.name}.images")
    if not labels.is_file():
        raise FerDataError(f"{labels}: RAF-DB label list of source '{source.name}' not found")
    if not images.is_dir():
        raise FerDataError(f"{images}: RAF-DB image folder of source '{source.name}' not found")
    entries: list[Listed] = []
    text = labels.read_text(encoding="utf-8-sig", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        locator = f"{labels.name}:{number}"
        fields = line.split()
        if not fields:
            continue
        name = safe_relative_path(fields[0]) if len(fields) == 2 else None
        if name is None or len(name.parts) != 1:
            yield Refused(
                None,
                locator,
                Rejection("bad_line", f"expected 'name.jpg label', got {line[:60]!r}"),
            )
            continue
        row_id = f"{source.name}/{display_name(fields[0])}"
        if fields[1] not in {str(i) for i in range(1, 8)}:
            why = Rejection("bad_label", f"label {fields[1][:20]!r} is not 1..7")
            yield Refused(row_id, locator, why)
            continue
        prefix = fields[0].split("_", 1)[0].lower()
        split = prefix if prefix in ("train", "test") else None
        entries.append(Listed(row_id, locator, fields[1], _image_file(images, fields[0]), split))
    yield from load_listed(entries, source.name, source.path, images, max_image_pixels, workers)


def _image_file(images: Path, name: str) -> Path:
    plain = images / name
    stem, dot, extension = name.rpartition(".")
    aligned = images / f"{stem}_aligned{dot}{extension}"
    return aligned if not plain.exists() and aligned.exists() else plain


register_preset("rafdb", {str(i): c for i, c in enumerate(RAFDB_LABELS, start=1)})
register_format(RafDbSource, read_rafdb)
