"""Export the processed dataset for trainers: an ImageFolder tree or 🤗-ready Parquet files."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fer.dataset import iter_rows, read_summary, staging_dir
from fer.errors import FerDataError
from fer.labels import CLASSES
from fer.split import SPLITS

__all__ = ["EXPORT_FORMATS", "export_dataset", "export_file_name"]

_MAX_NAME_BYTES = 200

EXPORT_FORMATS = ("imagefolder", "parquet")
_HF_FEATURES = {
    "id": {"dtype": "string", "_type": "Value"},
    "source": {"dtype": "string", "_type": "Value"},
    "image": {"_type": "Image"},
    "label": {"names": list(CLASSES), "_type": "ClassLabel"},
}
_EXPORT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        pa.field("label", pa.int64()),
    ],
    metadata={"huggingface": json.dumps({"info": {"features": _HF_FEATURES}})},
)


def export_dataset(processed: str | Path, out: str | Path, fmt: str) -> dict[str, int]:
    """Write `processed` (a split stage output) to `out`; returns images per split."""
    processed, out = Path(processed), Path(out)
    if fmt not in EXPORT_FORMATS:
        raise FerDataError(f"--format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
    if read_summary(processed).get("stage") != "split":
        raise FerDataError(
            f"{processed}: not a split stage output; export data/processed after `dvc repro`"
        )
    if out.exists() and not out.is_dir():
        raise FerDataError(f"{out}: exists and is a file; choose a new folder")
    if out.exists() and any(out.iterdir()):
        raise FerDataError(f"{out}: exists and is not empty; choose a new folder")
    staging = staging_dir(out)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        counts = (
            _imagefolder(processed, staging)
            if fmt == "imagefolder"
            else _parquet(processed, staging)
        )
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise FerDataError(f"{out}: cannot write the export ({exc.strerror or exc})") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return counts


def export_file_name(row_id: str, data: bytes) -> str:
    """The file name of a row in an ImageFolder export.

    Rule: the id with `/` written as `__`, every other character kept (dots and case too),
    plus `.png` or `.jpg` when the name does not already end in the stored format's
    extension. Names longer than 200 bytes keep their first 180 bytes plus `~` and 16 hex
    digits of the id's BLAKE2b digest, so that every id gets its own name.
    """
    extension = ".png" if data[:4] == b"\x89PNG" else ".jpg"
    name = row_id.replace("/", "__")
    allowed = (".png",) if extension == ".png" else (".jpg", ".jpeg")
    if not name.lower().endswith(allowed):
        name += extension
    if len(name.encode()) > _MAX_NAME_BYTES:
        stem = name.encode()[:180].decode("utf-8", "ignore")
        name = f"{stem}~{_digest(row_id)}{extension}"
    return name


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _imagefolder(processed: Path, out: Path) -> dict[str, int]:
    counts = dict.fromkeys(SPLITS, 0)
    for split in SPLITS:
        for label in CLASSES:
            (out / split / label).mkdir(parents=True)
    # Case-insensitive file systems (macOS, Windows) would merge a.JPG and a.jpg: names that
    # differ only by case get the id digest too.
    used: set[tuple[str, str, str]] = set()
    for row in iter_rows(processed, columns=["id", "label", "split", "image"]):
        data = row["image"]["bytes"]
        name = export_file_name(row["id"], data)
        key = (row["split"], row["label"], name.lower())
        if key in used:
            stem, extension = name.rsplit(".", 1)
            name = f"{stem}~{_digest(row['id'])}.{extension}"
            key = (row["split"], row["label"], name.lower())
        used.add(key)
        (out / row["split"] / row["label"] / name).write_bytes(data)
        counts[row["split"]] += 1
    return counts


def _parquet(processed: Path, out: Path) -> dict[str, int]:
    counts = dict.fromkeys(SPLITS, 0)
    writers = {
        s: pq.ParquetWriter(out / f"{s}.parquet", _EXPORT_SCHEMA, compression="zstd")
        for s in SPLITS
    }
    try:
        batches: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
        for row in iter_rows(processed, columns=["id", "source", "label_index", "split", "image"]):
            batches[row["split"]].append(
                {
                    "id": row["id"],
                    "source": row["source"],
                    "image": row["image"],
                    "label": row["label_index"],
                }
            )
            counts[row["split"]] += 1
            if len(batches[row["split"]]) >= 1024:
                writers[row["split"]].write_table(
                    pa.Table.from_pylist(batches[row["split"]], _EXPORT_SCHEMA)
                )
                batches[row["split"]] = []
        for split, rows in batches.items():
            writers[split].write_table(pa.Table.from_pylist(rows, _EXPORT_SCHEMA))
    finally:
        for writer in writers.values():
            writer.close()
    return counts
