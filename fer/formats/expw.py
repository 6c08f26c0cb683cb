"""ExpW (Expression in-the-Wild): `label.lst` and the uncropped web photos.

One line per face: `image_name face_id top left right bottom confidence label`, labels
0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral (preset `expw`: FER2013's
order). A photo with several faces gives several rows (`expw/<image>#<face_id>`), each with
its box as `source_box` (for `crop.no_face: source_box`) and the listed confidence as
`source_score`.
"""

from __future__ import annotations

from collections.abc import Iterator
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
from fer.labels import CLASSES, register_preset

__all__ = ["ExpwSource", "read_expw"]


class ExpwSource(SourceParams):
    """ExpW: the face list plus the folder of original photos."""

    format_name: ClassVar[str] = "expw"
    default_preset: ClassVar[str] = "expw"
    labels: RelativeInput = "label.lst"
    """The face list inside `path`."""
    images: RelativeInput = "image/origin"
    """The photo folder inside `path`."""


def read_expw(
    source: ExpwSource, *, max_image_pixels: int, workers: int
) -> Iterator[Kept | Refused]:
    """One row per listed face, sorted by id."""
    labels = input_inside(source.path, source.labels, f"sources.{source.name}.labels")
    images = input_inside(source.path, source.images, f"sources.{source.name}.images")
    if not labels.is_file():
        raise FerDataError(f"{labels}: ExpW face list of source '{source.name}' not found")
    if not images.is_dir():
        raise FerDataError(f"{images}: ExpW photo folder of source '{source.name}' not found")
    faces: list[Listed] = []
    text = labels.read_text(encoding="utf-8-sig", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        locator = f"{labels.name}:{number}"
        fields = line.split()
        if not fields:
            continue
        parsed = _parse(fields)
        if isinstance(parsed, Rejection):
            yield Refused(f"{source.name}/{display_name(fields[0])}", locator, parsed)
            continue
        name, face_id, box, score, label = parsed
        row_id = f"{source.name}/{display_name(name)}#{face_id}"
        extra = {"source_box": box, "source_score": score}
        faces.append(Listed(row_id, locator, label, images / name, extra=extra))
    yield from load_listed(faces, source.name, source.path, images, max_image_pixels, workers)


def _parse(fields: list[str]) -> tuple[str, str, dict, float, str] | Rejection:
    if len(fields) != 8 or safe_relative_path(fields[0]) is None:
        return Rejection(
            "bad_line",
            f"expected 'image face_id top left right bottom confidence label', got "
            f"{' '.join(fields)[:60]!r}",
        )
    name, face_id, *numbers, label = fields
    try:
        top, left, right, bottom, score = (float(v) for v in numbers)
    except ValueError:
        return Rejection("bad_line", f"box and confidence must be numbers, got {numbers}")
    if right <= left or bottom <= top:
        return Rejection(
            "bad_face_box", f"no area: left {left} right {right} top {top} bottom {bottom}"
        )
    if label not in {str(i) for i in range(len(CLASSES))}:
        return Rejection("bad_label", f"label {label[:20]!r} is not 0..6")
    box = {"x": left, "y": top, "w": right - left, "h": bottom - top}
    return name, face_id, box, score, label


register_preset("expw", {str(i): c for i, c in enumerate(CLASSES)})
register_format(ExpwSource, read_expw)
