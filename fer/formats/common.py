"""What every format reader shares: its items, row building and safe, parallel file loading."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from fer.dataset import storable_text as display_name
from fer.errors import FerDataError
from fer.images import Rejection, StoredImage, load_image
from fer.parallel import ordered_map

__all__ = [
    "Kept",
    "Listed",
    "Refused",
    "display_name",
    "image_row",
    "input_inside",
    "load_files",
    "load_listed",
    "safe_relative_path",
]


@dataclass(frozen=True)
class Kept:
    row: dict[str, Any]
    locator: str


@dataclass(frozen=True)
class Refused:
    row_id: str | None
    locator: str
    why: Rejection


def image_row(
    *,
    row_id: str,
    source: str,
    source_label: str,
    source_split: str | None,
    image: StoredImage,
    path: str | None,
    **extra: Any,
) -> dict[str, Any]:
    """One kept row in the ingest schema; columns not given are null."""
    return {
        "id": row_id,
        "source": source,
        "source_label": source_label,
        "source_split": source_split,
        "subject": None,
        "image": {"bytes": image.data, "path": path},
        "width": image.width,
        "height": image.height,
        "channels": image.channels,
        "notes": list(image.notes),
        "pixel_hash": image.pixel_hash,
        **extra,
    }


def safe_relative_path(text: str) -> PurePosixPath | None:
    """`text` as a relative path that stays inside its root, or None if it cannot."""
    cleaned = text.strip().replace("\\", "/")
    path = PurePosixPath(cleaned)
    if not cleaned or "\x00" in cleaned or path.is_absolute() or ".." in path.parts:
        return None
    return path


def input_inside(root: Path, relative: str | None, where: str) -> Path:
    """`root / relative`, refusing (one-line error) a result that resolves outside `root`."""
    path = root / relative if relative else root
    if relative and not path.resolve().is_relative_to(root.resolve()):
        raise FerDataError(
            f"{where}: {relative!r} resolves to {path.resolve()}, outside the source folder "
            f"{root}; put the file inside it so that DVC tracks it with the source"
        )
    return path


def _load_file(path: Path, root: Path, max_pixels: int) -> StoredImage | Rejection:
    try:
        real = path.resolve(strict=True)
        if not real.is_relative_to(root):
            return Rejection("path_escapes_root", f"resolves to {real}, outside {root}")
        mode = os.stat(real).st_mode
        if not stat.S_ISREG(mode):
            return Rejection("not_a_regular_file", "a FIFO, socket, device or folder, not a file")
        data = real.read_bytes()
    except FileNotFoundError:
        return Rejection("missing_file", f"{display_name(str(path))} does not exist")
    except (OSError, RuntimeError) as exc:
        # RuntimeError: a symlink loop on Python < 3.13.
        return Rejection(
            "unreadable_file", display_name(str(getattr(exc, "strerror", None) or exc))
        )
    return load_image(data, max_pixels)


def load_files(
    paths: Sequence[Path], root: Path, max_pixels: int, workers: int
) -> Iterator[StoredImage | Rejection]:
    """Decode and normalise files below `root` in parallel, in the order given.

    A file whose real path (symlinks resolved) lies outside `root`, or that is not a regular
    file, is refused before it is opened.
    """
    load = partial(_load_file, root=root.resolve(), max_pixels=max_pixels)
    return ordered_map(load, paths, workers, chunksize=128)


@dataclass(frozen=True)
class Listed:
    """An image an annotation file lists: its row id, where it was listed, its label and file."""

    row_id: str
    locator: str
    label: str
    file: Path
    split: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    """More columns of the row (subject, source_box, ...)."""


def load_listed(
    listed: Sequence[Listed],
    source: str,
    root: Path,
    images: Path,
    max_pixels: int,
    workers: int,
) -> Iterator[Kept | Refused]:
    """Load listed images (inside `images`) in id order: a row each, or the file's refusal.
    `path` is the file relative to the source's `root`."""
    ordered = sorted(listed, key=lambda entry: entry.row_id)
    results = load_files([entry.file for entry in ordered], images, max_pixels, workers)
    for entry, result in zip(ordered, results, strict=True):
        if isinstance(result, Rejection):
            yield Refused(entry.row_id, entry.locator, result)
            continue
        row = image_row(
            row_id=entry.row_id,
            source=source,
            source_label=entry.label,
            source_split=entry.split,
            image=result,
            path=str(entry.file.relative_to(root)),
            **entry.extra,
        )
        yield Kept(row, entry.locator)
