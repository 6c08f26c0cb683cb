"""Image folders with one folder per class at any depth (Kaggle AffectNet, FER2013, CK+)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Annotated, ClassVar

from pydantic import BeforeValidator

from fer.errors import FerDataError
from fer.formats import SourceParams, register_format
from fer.formats.common import Kept, Refused, display_name, image_row, load_files
from fer.images import Rejection

__all__ = ["DEFAULT_SPLIT_FOLDERS", "ImageFolderSource", "list_files", "read_image_folder"]

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
    labelled = [p for p in files if len(p.parts) >= 2]
    for path in files:
        if len(path.parts) < 2:
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
        split = next((d for d in parts[:-2] if d.lower() in source.split_folders), None)
        notes = () if shown == str(path) else ("name_not_utf8",)
        row = image_row(
            row_id=row_id,
            source=source.name,
            source_label=parts[-2],
            source_split=split,
            image=result,
            path=shown,
        )
        row["notes"] = [*row["notes"], *notes]
        yield Kept(row, shown)


register_format(ImageFolderSource, read_image_folder)
