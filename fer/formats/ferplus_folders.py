"""FER+ as Microsoft's generator writes it: `FER2013Train/`, `FER2013Valid/`, `FER2013Test/`,
each a header-less `label.csv` and the PNGs.

A line reads `fer0000000.png,"(0, 0, 48, 48)",4,0,0,1,3,2,0,0,0,0`: the file, the face box,
then the ten votes (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt,
unknown, NF). The label is FER+'s majority rule, as in the CSV route (`fer2013_csv` with
`labels`), with the same rejects; the votes are kept in `label_votes`. Valid is FER2013's
PublicTest, Test its PrivateTest.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import ClassVar

import numpy as np

from fer.errors import FerDataError
from fer.formats import SourceParams, register_format
from fer.formats.common import (
    Kept,
    Listed,
    Refused,
    display_name,
    load_listed,
    safe_relative_path,
)
from fer.formats.fer2013_csv import ferplus_label, ferplus_majority
from fer.images import Rejection

__all__ = ["FERPLUS_FOLDERS", "FerPlusFoldersSource", "read_ferplus_folders"]

FERPLUS_FOLDERS = {
    "FER2013Train": "Training",
    "FER2013Valid": "PublicTest",
    "FER2013Test": "PrivateTest",
}
"""The generator's folders and the FER2013 `Usage` each holds."""


class FerPlusFoldersSource(SourceParams):
    """FER+ folders: `path` holds FER2013Train/, FER2013Valid/ and FER2013Test/ (any of them)."""

    format_name: ClassVar[str] = "ferplus_folders"


def read_ferplus_folders(
    source: FerPlusFoldersSource, *, max_image_pixels: int, workers: int
) -> Iterator[Kept | Refused]:
    """One row per listed image with a majority label, sorted by id."""
    present = [name for name in FERPLUS_FOLDERS if (source.path / name / "label.csv").is_file()]
    if not present:
        raise FerDataError(
            f"{source.path}: no {'/, '.join(FERPLUS_FOLDERS)}/ folder with a label.csv; point "
            f"sources.{source.name}.path at the folder FER+'s generator wrote"
        )
    listed: list[Listed] = []
    for folder in present:
        labels = source.path / folder / "label.csv"
        with labels.open(newline="", encoding="utf-8-sig") as handle:
            lines = [(n, row) for n, row in enumerate(csv.reader(handle), start=1) if row]
        parsed = [(n, row, _votes(row)) for n, row in lines]
        good = [(n, row, votes) for n, row, votes in parsed if votes is not None]
        for n, row, votes in parsed:
            if votes is None:
                yield Refused(None, f"{folder}/label.csv:{n}", _bad_line(row))
        winners = ferplus_majority(np.array([v for *_, v in good], np.int64).reshape(-1, 10))
        for (n, row, votes), winner in zip(good, winners.tolist(), strict=True):
            locator = f"{folder}/label.csv:{n}"
            row_id = f"{source.name}/{folder}/{display_name(row[0].strip())}"
            label = ferplus_label(votes, winner)
            if not isinstance(label, str):
                yield Refused(row_id, locator, label)
                continue
            file = source.path / folder / row[0].strip()
            extra = {"label_votes": votes}
            listed.append(Listed(row_id, locator, label, file, FERPLUS_FOLDERS[folder], extra))
    yield from load_listed(listed, source.name, source.path, source.path, max_image_pixels, workers)


def _votes(row: list[str]) -> list[int] | None:
    name = safe_relative_path(row[0]) if row else None
    if len(row) != 12 or name is None or len(name.parts) != 1:
        return None
    try:
        votes = [int(v) for v in row[2:]]
    except ValueError:
        return None
    return votes if all(v >= 0 for v in votes) else None


def _bad_line(row: list[str]) -> Rejection:
    return Rejection(
        "bad_line", f"expected 'file,\"(box)\",' and ten vote counts, got {','.join(row)[:60]!r}"
    )


register_format(FerPlusFoldersSource, read_ferplus_folders)
