"""AffectNet's Manual_Annotated CSV: face box, 68 landmarks, expression, valence, arousal."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fer.errors import FerDataError
from fer.formats import RelativeInput, SourceParams, register_format
from fer.formats.common import (
    Kept,
    Refused,
    image_row,
    input_inside,
    load_files,
    safe_relative_path,
)
from fer.images import Rejection, StoredImage

__all__ = ["AFFECTNET_COLUMNS", "AffectNetCsvSource", "read_affectnet_csv"]


class AffectNetCsvSource(SourceParams):
    """AffectNet's Manual_Annotated CSV plus the image root it points into."""

    format_name: ClassVar[str] = "affectnet_csv"
    default_preset: ClassVar[str] = "affectnet"
    annotations: RelativeInput = "training.csv"
    """CSV file name inside `path`."""
    images: str = "."
    """Image root inside `path` that `subDirectory_filePath` is relative to."""
    label_column: str = "expression"
    split: str | None = None
    """Value for `source_split` (AffectNet ships training and validation CSVs)."""

    @property
    def annotations_path(self) -> Path:
        return input_inside(self.path, self.annotations, f"sources.{self.name}.annotations")

    @property
    def images_path(self) -> Path:
        images = None if self.images.strip() in ("", ".") else self.images
        if images is not None and safe_relative_path(images) is None:
            raise FerDataError(
                f"sources.{self.name}.images: {images!r} must be a folder inside {self.path}"
            )
        return input_inside(self.path, images, f"sources.{self.name}.images")


AFFECTNET_COLUMNS = (
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
)


@dataclass(frozen=True)
class _Entry:
    row_id: str
    locator: str
    relative: str
    label: str
    extra: dict[str, Any]


def read_affectnet_csv(
    source: AffectNetCsvSource, *, max_image_pixels: int, workers: int
) -> Iterator[Kept | Refused]:
    """Rows of the annotation CSV joined with their image files, sorted by id."""
    csv_path, image_root = source.annotations_path, source.images_path
    if not csv_path.is_file():
        raise FerDataError(
            f"{csv_path}: AffectNet annotation CSV of source '{source.name}' not found"
        )
    if not image_root.is_dir():
        raise FerDataError(
            f"{image_root}: AffectNet image root of source '{source.name}' not found"
        )
    entries: list[_Entry] = []
    with csv_path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.DictReader(f)
        required = (*AFFECTNET_COLUMNS, source.label_column)
        missing = [c for c in required if c not in (reader.fieldnames or ())]
        if missing:
            raise FerDataError(
                f"{csv_path}:1: header lacks {', '.join(missing)}; an AffectNet Manual_Annotated "
                f"CSV has {', '.join(AFFECTNET_COLUMNS)}, expression, valence, arousal "
                "(set 'label_column' if the label column has another name)"
            )
        for record in reader:
            locator = f"{csv_path.name}:{reader.line_num}"
            parsed = _parse_record(record, source)
            if isinstance(parsed, Refused):
                yield Refused(parsed.row_id, locator, parsed.why)
            else:
                entries.append(_Entry(locator=locator, **parsed))
    entries.sort(key=lambda e: e.row_id)
    results = load_files(
        [image_root / e.relative for e in entries], image_root, max_image_pixels, workers
    )
    for entry, result in zip(entries, results, strict=True):
        if not isinstance(result, Rejection):
            result = _fit_box(entry.extra, result)
        if isinstance(result, Rejection):
            yield Refused(entry.row_id, entry.locator, result)
            continue
        yield Kept(
            image_row(
                row_id=entry.row_id,
                source=source.name,
                source_label=entry.label,
                source_split=source.split,
                image=result,
                path=entry.relative,
                **entry.extra,
            ),
            entry.locator,
        )


def _parse_record(record: dict[str, Any], source: AffectNetCsvSource) -> dict[str, Any] | Refused:
    raw_path = (record.get("subDirectory_filePath") or "").strip()
    if "\x00" in raw_path:
        return Refused(None, "", Rejection("bad_path", "subDirectory_filePath holds a NUL byte"))
    relative = safe_relative_path(raw_path)
    row_id = f"{source.name}/{relative}" if relative else None
    if relative is None:
        return Refused(
            row_id,
            "",
            Rejection(
                "path_escapes_root",
                f"subDirectory_filePath {raw_path[:80]!r} is empty, absolute or uses '..'",
            ),
        )
    raw_label = (record.get(source.label_column) or "").strip()
    try:
        label = str(int(raw_label))
    except ValueError:
        return Refused(
            row_id,
            "",
            Rejection("bad_label", f"{source.label_column} {raw_label[:20]!r} is not an integer"),
        )
    box = [_to_float(record.get(k)) for k in ("face_x", "face_y", "face_width", "face_height")]
    if any(v is None for v in box) or box[2] <= 0 or box[3] <= 0:
        return Refused(
            row_id,
            "",
            Rejection(
                "bad_face_box",
                "face_x/face_y/face_width/face_height must be numbers with positive size",
            ),
        )
    landmarks_text = (record.get("facial_landmarks") or "").strip()
    landmarks = None
    if landmarks_text:
        try:
            values = np.fromstring(landmarks_text, dtype=np.float64, sep=";")
        except ValueError:
            values = np.array([np.nan])
        if values.size % 2 or not np.isfinite(values).all():
            return Refused(
                row_id,
                "",
                Rejection("bad_landmarks", "facial_landmarks must be ';'-separated x;y numbers"),
            )
        landmarks = values.astype(np.float32).tolist()
    return {
        "row_id": row_id,
        "relative": str(relative),
        "label": label,
        "extra": {
            "source_box": dict(zip("xywh", box, strict=True)),
            "source_landmarks": landmarks,
            "valence": _to_float(record.get("valence")),
            "arousal": _to_float(record.get("arousal")),
        },
    }


def _fit_box(extra: dict[str, Any], image: StoredImage) -> StoredImage | Rejection:
    """Refuse a face box wholly outside the image; clip one partly outside (with a note)."""
    box = extra["source_box"]
    x1, y1 = max(0.0, box["x"]), max(0.0, box["y"])
    x2 = min(float(image.width), box["x"] + box["w"])
    y2 = min(float(image.height), box["y"] + box["h"])
    if x2 <= x1 or y2 <= y1:
        return Rejection(
            "bad_face_box",
            f"face box {box} lies outside the {image.width}x{image.height} image",
        )
    clipped = {"x": x1, "y": y1, "w": x2 - x1, "h": y2 - y1}
    if clipped != box:
        extra["source_box"] = clipped
        return StoredImage(
            image.data,
            image.width,
            image.height,
            image.channels,
            (*image.notes, "face_box_clipped"),
            image.pixel_hash,
        )
    return image


def _to_float(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


register_format(AffectNetCsvSource, read_affectnet_csv)
