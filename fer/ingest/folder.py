"""Image folders with one folder per class at any depth (Kaggle AffectNet, FER2013, CK+)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from fer.config import ImageFolderSource, IngestParams
from fer.errors import FerDataError
from fer.images import Rejection
from fer.ingest.common import Kept, Refused, image_row, load_files

__all__ = ["list_files", "read_image_folder"]


def list_files(root: Path) -> list[PurePosixPath]:
    """Every file below `root` as a sorted relative POSIX path (symlinked folders not followed)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        relative = PurePosixPath(Path(folder).relative_to(root).as_posix())
        found.extend(relative / name for name in files)
    return sorted(found, key=str)


def read_image_folder(source: ImageFolderSource, params: IngestParams) -> Iterator[Kept | Refused]:
    """One row per image file; the parent folder is `source_label`, a split folder above it
    (`train/`, `test/`, ...) is `source_split`. Every other file is a counted reject."""
    root = source.path
    if not root.is_dir():
        raise FerDataError(f"{root}: image folder of source '{source.name}' not found")
    files = list_files(root)
    labelled = [p for p in files if len(p.parts) >= 2]
    for path in files:
        if len(path.parts) < 2:
            yield Refused(
                f"{source.name}/{path}",
                str(path),
                Rejection(
                    "no_class_folder",
                    "file lies directly in the source folder, not in a class folder",
                ),
            )
    results = load_files([root / p for p in labelled], params.max_image_pixels, params.workers)
    for path, result in zip(labelled, results, strict=True):
        row_id = f"{source.name}/{path}"
        if isinstance(result, Rejection):
            yield Refused(row_id, str(path), result)
            continue
        split = next((d for d in path.parts[:-2] if d.lower() in source.split_folders), None)
        yield Kept(
            image_row(
                row_id=row_id,
                source=source.name,
                source_label=path.parts[-2],
                source_split=split,
                image=result,
                path=str(path),
            ),
            str(path),
        )
