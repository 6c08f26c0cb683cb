"""What every ingest reader shares: the items it yields and parallel file decoding."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from fer.images import Rejection, StoredImage, load_image

__all__ = ["Kept", "Refused", "image_row", "load_files", "safe_relative_path"]


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
        "image": {"bytes": image.data, "path": path},
        "width": image.width,
        "height": image.height,
        "channels": image.channels,
        "notes": list(image.notes),
        "pixel_hash": image.pixel_hash,
        **extra,
    }


def safe_relative_path(text: str) -> PurePosixPath | None:
    """`text` as a relative path that stays inside its root, or None if it escapes."""
    cleaned = text.strip().replace("\\", "/")
    path = PurePosixPath(cleaned)
    if not cleaned or path.is_absolute() or ".." in path.parts:
        return None
    return path


def _load_file(path: Path, max_pixels: int) -> StoredImage | Rejection:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Rejection("missing_file", f"{path} does not exist")
    except OSError as exc:
        return Rejection("unreadable_file", f"{path}: {exc.strerror or exc}")
    return load_image(data, max_pixels)


def load_files(
    paths: Sequence[Path], max_pixels: int, workers: int
) -> Iterator[StoredImage | Rejection]:
    """Decode and normalise files in parallel, yielding results in the order given."""
    workers = workers or os.cpu_count() or 1
    load = partial(_load_file, max_pixels=max_pixels)
    if workers == 1 or len(paths) < 256:
        yield from map(load, paths)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(load, paths, chunksize=128)
