"""CK+ (Extended Cohn-Kanade) in its original layout: image sequences and emotion files.

`cohn-kanade-images/S005/001/S005_001_00000011.png` are the frames of sequence 001 of subject
S005; `Emotion/S005/001/S005_001_00000011_emotion.txt` holds one float, the label of the
sequence's last (peak) frame: 0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy,
6 sadness, 7 surprise (preset `ckplus`: contempt is dropped). The usual protocol: the last
`last_frames` frames of each labelled sequence take its label, and with `first_as_neutral`
its first frame is a neutral face. Frames the protocol does not use are not rows; `subject`
is the subject folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field

from fer.errors import FerDataError
from fer.formats import RelativeInput, SourceParams, register_format
from fer.formats.common import Kept, Listed, Refused, display_name, input_inside, load_listed
from fer.images import Rejection
from fer.labels import register_preset

__all__ = ["CKPLUS_LABELS", "CkPlusSource", "read_ckplus"]

CKPLUS_LABELS = ("neutral", "angry", None, "disgust", "fear", "happy", "sad", "surprise")
"""Canonical class of CK+ code 0 ... 7 (2, contempt, has none)."""
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


class CkPlusSource(SourceParams):
    """CK+: frames under `images`, one emotion file per labelled sequence under `emotions`."""

    format_name: ClassVar[str] = "ckplus"
    default_preset: ClassVar[str] = "ckplus"
    images: RelativeInput = "cohn-kanade-images"
    emotions: RelativeInput = "Emotion"
    last_frames: Annotated[int, Field(ge=1)] = 3
    """The last this many frames of a labelled sequence take its label."""
    first_as_neutral: bool = False
    """Also take each labelled sequence's first frame, as neutral."""


def read_ckplus(
    source: CkPlusSource, *, max_image_pixels: int, workers: int
) -> Iterator[Kept | Refused]:
    """The protocol's frames of every labelled sequence, sorted by id."""
    images = input_inside(source.path, source.images, f"sources.{source.name}.images")
    emotions = input_inside(source.path, source.emotions, f"sources.{source.name}.emotions")
    for folder, what in ((images, "image"), (emotions, "emotion")):
        if not folder.is_dir():
            raise FerDataError(f"{folder}: CK+ {what} folder of source '{source.name}' not found")
    frames: list[Listed] = []
    for emotion_file in sorted(emotions.rglob("*_emotion.txt")):
        relative = emotion_file.relative_to(emotions)
        locator = str(relative)
        sequence = relative.parent
        subject = sequence.parts[0] if sequence.parts else None
        code = _code(emotion_file)
        if isinstance(code, Rejection):
            yield Refused(f"{source.name}/{display_name(str(sequence))}", locator, code)
            continue
        files = sorted(
            p for p in (images / sequence).glob("*") if p.suffix.lower() in _IMAGE_SUFFIXES
        )
        if not files:
            why = Rejection("missing_file", f"no frames in {display_name(str(images / sequence))}")
            yield Refused(f"{source.name}/{display_name(str(sequence))}", locator, why)
            continue
        chosen = [(file, code) for file in files[-source.last_frames :]]
        if source.first_as_neutral and files[0] not in files[-source.last_frames :]:
            chosen.insert(0, (files[0], "0"))
        for file, label in chosen:
            row_id = f"{source.name}/{display_name(file.name)}"
            frames.append(Listed(row_id, locator, label, file, extra={"subject": subject}))
    yield from load_listed(frames, source.name, source.path, images, max_image_pixels, workers)


def _code(file: Path) -> str | Rejection:
    text = file.read_text(encoding="utf-8", errors="replace").strip()
    try:
        value = float(text)
    except ValueError:
        return Rejection("bad_label", f"emotion file holds {text[:30]!r}, not a number")
    if value != int(value) or not 0 <= value <= 7:
        return Rejection("bad_label", f"emotion code {text[:30]!r} is not 0..7")
    return str(int(value))


register_preset("ckplus", {str(i): c for i, c in enumerate(CKPLUS_LABELS)})
register_format(CkPlusSource, read_ckplus)
