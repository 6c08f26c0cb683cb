"""The FER2013 challenge CSV (`emotion,pixels,Usage`) and its FER+ relabels."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fer.errors import FerDataError
from fer.formats import RelativeInput, SourceParams, register_format
from fer.formats.common import Kept, Refused, image_row, input_inside
from fer.images import Rejection, StoredImage, encode_png, pixel_hash

__all__ = [
    "FER2013_USAGES",
    "FERPLUS_CLASSES",
    "Fer2013CsvSource",
    "count_data_lines",
    "ferplus_label",
    "ferplus_majority",
    "read_fer2013_csv",
    "read_ferplus",
]

FER2013_USAGES = ("Training", "PublicTest", "PrivateTest")
FER2013_SIDE = 48
FER2013_CLASSES = 7
FERPLUS_CLASSES = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
_FERPLUS_HEADER = ("Usage", "Image name", *FERPLUS_CLASSES)
_REQUIRED = ("emotion", "pixels", "Usage")


class Fer2013CsvSource(SourceParams):
    """The FER2013 challenge CSV (`emotion,pixels,Usage`), optionally relabelled by FER+."""

    format_name: ClassVar[str] = "fer2013_csv"
    csv: RelativeInput | None = None
    """CSV file name inside `path` when `path` is a folder."""
    labels: RelativeInput | None = None
    """FER+ `fer2013new.csv` inside `path` (a folder); its majority vote replaces the label."""

    def label_preset(self) -> str:
        return "names" if self.labels else "fer2013"

    @property
    def csv_path(self) -> Path:
        return input_inside(self.path, self.csv, f"sources.{self.name}.csv")

    @property
    def labels_path(self) -> Path | None:
        if not self.labels:
            return None
        return input_inside(self.path, self.labels, f"sources.{self.name}.labels")


def count_data_lines(path: Path) -> int:
    """Non-blank lines after the header; equals the record count for FER2013-style CSVs."""
    count = 0
    with path.open("rb") as f:
        next(f, None)
        for line in f:
            count += bool(line.strip())
    return count


def read_fer2013_csv(source: Fer2013CsvSource, **_: Any) -> Iterator[Kept | Refused]:
    """Validate each CSV row into a 48x48 grayscale PNG row; bad rows become rejects."""
    csv_path = source.csv_path
    if csv_path.is_dir():
        raise FerDataError(
            f"{csv_path}: source '{source.name}' is a folder; set sources.{source.name}.csv "
            "to the CSV file inside it"
        )
    if not csv_path.is_file():
        raise FerDataError(f"{csv_path}: FER2013 CSV of source '{source.name}' not found")
    total = count_data_lines(csv_path)
    relabels = read_ferplus(source.labels_path, total, csv_path) if source.labels_path else None
    width = max(6, len(str(total)))
    name = csv_path.name
    # utf-8-sig: spreadsheet exports start with a byte-order mark.
    with csv_path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        columns = _header_columns(header, csv_path)
        index = 0
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                # The reader resumes on the next line; a huge field is a pixels field gone wrong.
                locator = f"{name}:{reader.line_num}"
                yield Refused(
                    f"{source.name}/{index:0{width}d}",
                    locator,
                    Rejection("wrong_pixel_count", f"unparseable row ({exc})"),
                )
                index += 1
                continue
            locator = f"{name}:{reader.line_num}"
            if not fields or all(not x.strip() for x in fields):
                yield Refused(None, locator, Rejection("blank_line", "empty line"))
                continue
            row_id = f"{source.name}/{index:0{width}d}"
            result = _parse_row(fields, columns, len(header))
            if isinstance(result, Rejection):
                yield Refused(row_id, locator, result)
            else:
                label, usage, image = result
                votes = None
                if relabels is not None:
                    outcome = relabels[index]
                    if outcome.usage != usage:
                        raise FerDataError(
                            f"{csv_path}:{reader.line_num}: Usage {usage!r} but FER+ row "
                            f"{index + 2} of {source.labels_path} says {outcome.usage!r}; the two "
                            "files are not in the same row order (FER+ follows the original "
                            "fer2013.csv); use the original CSV or drop 'labels'"
                        )
                    if isinstance(outcome.label, Rejection):
                        yield Refused(row_id, locator, outcome.label)
                        index += 1
                        continue
                    label, votes = outcome.label, outcome.votes
                yield Kept(
                    image_row(
                        row_id=row_id,
                        source=source.name,
                        source_label=label,
                        source_split=usage,
                        image=image,
                        path=None,
                        label_votes=votes,
                    ),
                    locator,
                )
            index += 1


def _header_columns(header: list[str] | None, path: Path) -> dict[str, int]:
    if not header:
        raise FerDataError(f"{path}: empty file; expected a header 'emotion,pixels,Usage'")
    names = [name.strip() for name in header]
    repeated = sorted({n for n in names if n in _REQUIRED and names.count(n) > 1})
    if repeated:
        raise FerDataError(
            f"{path}:1: header names {', '.join(repeated)} more than once; keep one column each"
        )
    positions = {name: i for i, name in enumerate(names)}
    missing = [c for c in _REQUIRED if c not in positions]
    if missing:
        raise FerDataError(
            f"{path}:1: header {','.join(header)[:80]!r} lacks {', '.join(missing)}; "
            "a FER2013 CSV starts with 'emotion,pixels,Usage'"
        )
    return {c: positions[c] for c in _REQUIRED}


def _parse_row(
    fields: list[str], columns: dict[str, int], width: int
) -> tuple[str, str, StoredImage] | Rejection:
    if len(fields) != width:
        return Rejection("wrong_column_count", f"{len(fields)} fields, header has {width}")
    raw_label = fields[columns["emotion"]].strip()
    try:
        label = int(raw_label)
    except ValueError:
        return Rejection("bad_label", f"emotion {raw_label[:20]!r} is not an integer")
    if not 0 <= label < FER2013_CLASSES:
        return Rejection(
            "label_out_of_range", f"emotion {label} is outside 0-{FER2013_CLASSES - 1}"
        )
    usage = fields[columns["Usage"]].strip()
    if usage not in FER2013_USAGES:
        return Rejection("unknown_usage", f"Usage {usage[:20]!r} is not one of {FER2013_USAGES}")
    try:
        # int64 saturates instead of wrapping, so huge values stay out of range below.
        pixels = np.fromstring(fields[columns["pixels"]], dtype=np.int64, sep=" ")
    except ValueError:
        return Rejection("bad_pixel_value", "pixels holds a token that is not an integer")
    if pixels.size != FER2013_SIDE * FER2013_SIDE:
        return Rejection("wrong_pixel_count", f"{pixels.size} pixels, expected 2304 (48x48)")
    low, high = int(pixels.min()), int(pixels.max())
    if low < 0 or high > 255:
        return Rejection("pixel_out_of_range", f"pixel values span {low}..{high}, expected 0..255")
    image = pixels.astype(np.uint8).reshape(FER2013_SIDE, FER2013_SIDE)
    stored = StoredImage(encode_png(image), FER2013_SIDE, FER2013_SIDE, 1, (), pixel_hash(image))
    return str(label), usage, stored


class _Relabel:
    __slots__ = ("label", "usage", "votes")

    def __init__(self, usage: str, label: str | Rejection, votes: list[int]) -> None:
        self.usage, self.label, self.votes = usage, label, votes


def ferplus_majority(votes: np.ndarray) -> np.ndarray:
    """FERPlus reference 'majority' rule per row: index into FERPLUS_CLASSES, or -1.

    As in FERPlus `ferplus.py`: single votes are outliers and zeroed; the top class wins
    only with more than half of the remaining votes; otherwise the row has no majority (-1).
    """
    kept = np.where(votes <= 1, 0, votes)
    top = kept.argmax(axis=1)
    has_majority = kept.max(axis=1) > 0.5 * kept.sum(axis=1)
    return np.where(has_majority, top, -1)


def read_ferplus(path: Path, expected_rows: int, csv_path: Path) -> list[_Relabel]:
    """Parse `fer2013new.csv` into one relabel outcome per FER2013 row, by row order."""
    if not path.is_file():
        raise FerDataError(f"{path}: FER+ labels file not found; fix 'labels' or remove it")
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(c.strip() for c in rows[0]) != _FERPLUS_HEADER:
        raise FerDataError(f"{path}:1: header is not FER+'s '{','.join(_FERPLUS_HEADER)}'")
    body = [r for r in rows[1:] if any(x.strip() for x in r)]
    if len(body) != expected_rows:
        raise FerDataError(
            f"{path}: {len(body)} FER+ rows but {csv_path} has {expected_rows} data rows; "
            "FER+ joins by row order, so both must come from the same original fer2013.csv"
        )
    try:
        votes = np.array([[int(v) for v in r[2:12]] for r in body], dtype=np.int64).reshape(-1, 10)
    except ValueError as exc:
        bad = next(
            i
            for i, r in enumerate(body)
            if len(r) != 12 or not all(v.strip().isdigit() for v in r[2:12])
        )
        raise FerDataError(f"{path}:{bad + 2}: expected ten integer vote counts ({exc})") from exc
    winners = ferplus_majority(votes)
    outcomes = []
    for row, vote_row, winner in zip(body, votes.tolist(), winners.tolist(), strict=True):
        usage, image_name = row[0].strip(), row[1].strip()
        label: str | Rejection
        if not image_name:
            label = Rejection("ferplus_no_image", "FER+ has no image name for this row")
        else:
            label = ferplus_label(vote_row, winner)
        outcomes.append(_Relabel(usage, label, vote_row))
    return outcomes


def ferplus_label(votes: list[int], winner: int) -> str | Rejection:
    """The FER+ class a row's majority names, or why it has none (no majority, unknown, NF)."""
    if winner < 0:
        return Rejection("ferplus_no_majority", f"no class has a majority of votes {votes}")
    if FERPLUS_CLASSES[winner] in ("unknown", "NF"):
        return Rejection(
            f"ferplus_{FERPLUS_CLASSES[winner].lower()}",
            f"FER+ majority says {FERPLUS_CLASSES[winner]} (votes {votes})",
        )
    return FERPLUS_CLASSES[winner]


register_format(Fer2013CsvSource, read_fer2013_csv)
