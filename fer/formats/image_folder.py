"""Image folders with one folder per class at any depth (Kaggle AffectNet, FER2013, CK+)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BeforeValidator

from fer.errors import FerDataError
from fer.formats import SourceParams, register_format
from fer.formats.common import Kept, Refused, display_name, image_row, load_files
from fer.images import Rejection
from fer.labels import register_preset

__all__ = [
    "DEFAULT_SPLIT_FOLDERS",
    "FILENAME_PRESETS",
    "ImageFolderSource",
    "list_files",
    "read_image_folder",
]

FILENAME_PRESETS = {
    # CK+48: S010_006_00000013.png = subject S010, sequence 006, frame 13.
    "ckplus48": r"^(?P<subject>S\d+)_\d+_\d+",
    # JAFFE: KA.AN1.39.tiff = subject KA, expression AN (take 1), picture 39.
    "jaffe": r"^(?P<subject>[A-Z]{2})\.(?P<label>AN|DI|FE|HA|NE|SA|SU)\d*\.\d+",
    # KDEF: AF01ANS.JPG = session A, female 01 (the subject), expression AN, angle S.
    "kdef": r"^[AB](?P<subject>[FM]\d{2})(?P<label>AF|AN|DI|HA|NE|SA|SU)(?:FL|FR|HL|HR|S)\.",
}
"""Named file-name patterns; a preset with a `label` group has a label preset of its name."""
_CODES = {"AN": "angry", "DI": "disgust", "FE": "fear", "HA": "happy", "NE": "neutral"}
register_preset("jaffe", {**_CODES, "SA": "sad", "SU": "surprise"})
register_preset("kdef", {**_CODES, "AF": "fear", "SA": "sad", "SU": "surprise"})


def _pattern(value: str | None) -> str | None:
    if value is None:
        return None
    text = FILENAME_PRESETS.get(value, value)
    try:
        compiled = re.compile(text)
    except re.error as exc:
        raise ValueError(
            f"not a regular expression ({exc}) nor a preset ({', '.join(FILENAME_PRESETS)})"
        ) from None
    if not {"label", "subject"} & set(compiled.groupindex):
        raise ValueError("needs a named group (?P<label>...) or (?P<subject>...), or a preset")
    return value


DEFAULT_SPLIT_FOLDERS = (
    "train",
    "training",
    "val",
    "valid",
    "validation",
    "test",
    "testing",
    "publictest",
    "privatetest",
)


def _lowercase_names(value: object) -> object:
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(v.lower() for v in value)
    return value


class ImageFolderSource(SourceParams):
    """Images in one folder per class at any depth; the parent folder is the label."""

    format_name: ClassVar[str] = "image_folder"
    split_folders: Annotated[tuple[str, ...], BeforeValidator(_lowercase_names)] = (
        DEFAULT_SPLIT_FOLDERS
    )
    """Ancestor folder names (case-insensitive) that give `source_split`."""
    filename_pattern: Annotated[str | None, AfterValidator(_pattern)] = None
    """A regex searched in each file name with named groups `label` and/or `subject`, or a
    preset: ckplus48, jaffe, kdef. A `label` group replaces the class folder."""

    @property
    def name_pattern(self) -> re.Pattern[str] | None:
        if self.filename_pattern is None:
            return None
        return re.compile(FILENAME_PRESETS.get(self.filename_pattern, self.filename_pattern))

    def label_preset(self) -> str:
        pattern = self.name_pattern
        if pattern is not None and "label" in pattern.groupindex:
            return self.filename_pattern if self.filename_pattern in FILENAME_PRESETS else "names"
        return "names"


def list_files(root: Path) -> tuple[list[PurePosixPath], list[Refused]]:
    """Every file below `root` as a relative path sorted by its shown name, and the folder
    links refused on the way.

    Folder links are not followed: one that resolves inside `root` is a second path to files
    that are read under their real path (`linked_folder`), one that leads outside is
    `path_escapes_root`. File names keep their bytes for opening; a name that is not UTF-8 is
    shown (in ids) with `\\xNN` escapes.
    """
    real_root = root.resolve()
    found: list[PurePosixPath] = []
    refused: list[Refused] = []
    for folder, dirs, files in os.walk(root):
        relative = PurePosixPath(Path(folder).relative_to(root).as_posix())
        for name in sorted(dirs):
            link = Path(folder) / name
            if not link.is_symlink():
                continue
            real = link.resolve()
            shown = display_name(str(relative / name))
            why = (
                Rejection("linked_folder", f"link to {real}, read under its real path")
                if real.is_relative_to(real_root)
                else Rejection("path_escapes_root", f"folder link to {real}, outside {real_root}")
            )
            refused.append(Refused(None, shown, why))
        dirs.sort()
        found.extend(relative / name for name in files)
    return sorted(found, key=lambda p: display_name(str(p))), refused


def read_image_folder(
    source: ImageFolderSource, *, max_image_pixels: int, workers: int
) -> Iterator[Kept | Refused]:
    """One row per image file; the parent folder is `source_label`, a split folder above it
    (`train/`, `test/`, ...) is `source_split`. Every other file is a counted reject."""
    root = source.path
    if not root.is_dir():
        raise FerDataError(f"{root}: image folder of source '{source.name}' not found")
    files, refused = list_files(root)
    yield from refused
    pattern = source.name_pattern
    by_name = pattern is not None and "label" in pattern.groupindex
    labelled = [p for p in files if len(p.parts) >= 2 or by_name]
    for path in files:
        if len(path.parts) < 2 and not by_name:
            yield Refused(
                f"{source.name}/{display_name(str(path))}",
                display_name(str(path)),
                Rejection(
                    "no_class_folder",
                    "file lies directly in the source folder, not in a class folder",
                ),
            )
    results = load_files([root / p for p in labelled], root, max_image_pixels, workers)
    for path, result in zip(labelled, results, strict=True):
        shown = display_name(str(path))
        row_id = f"{source.name}/{shown}"
        if isinstance(result, Rejection):
            yield Refused(row_id, shown, result)
            continue
        parts = PurePosixPath(shown).parts
        folders = parts[:-1] if by_name else parts[:-2]
        split = next((d for d in folders if d.lower() in source.split_folders), None)
        notes = [] if shown == str(path) else ["name_not_utf8"]
        match = pattern.search(parts[-1]) if pattern is not None else None
        if by_name and match is None:
            why = Rejection("name_mismatch", f"file name does not match {pattern.pattern!r}")
            yield Refused(row_id, shown, why)
            continue
        if pattern is not None and match is None:
            notes.append("name_mismatch")
        found = match.groupdict() if match is not None else {}
        row = image_row(
            row_id=row_id,
            source=source.name,
            source_label=found["label"] if by_name else parts[-2],
            source_split=split,
            image=result,
            path=shown,
        )
        row["subject"] = found.get("subject")
        row["notes"] = [*row["notes"], *notes]
        yield Kept(row, shown)


register_format(ImageFolderSource, read_image_folder)
