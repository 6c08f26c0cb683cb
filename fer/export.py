"""Export the processed dataset for trainers: an ImageFolder tree or 🤗-ready Parquet files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fer.dataset import iter_rows, read_summary
from fer.errors import FerDataError
from fer.labels import CLASSES
from fer.split import SPLITS

__all__ = ["EXPORT_FORMATS", "export_dataset"]

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
    if out.exists() and any(out.iterdir()):
        raise FerDataError(f"{out}: exists and is not empty; choose a new folder")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    counts = (
        _imagefolder(processed, staging) if fmt == "imagefolder" else _parquet(processed, staging)
    )
    if out.exists():
        out.rmdir()
    staging.rename(out)
    return counts


def _file_name(row: dict[str, Any]) -> str:
    extension = ".png" if row["image"]["bytes"][:4] == b"\x89PNG" else ".jpg"
    return row["id"].replace("/", "__").rsplit(".", 1)[0] + extension


def _imagefolder(processed: Path, out: Path) -> dict[str, int]:
    counts = dict.fromkeys(SPLITS, 0)
    for split in SPLITS:
        for label in CLASSES:
            (out / split / label).mkdir(parents=True)
    for row in iter_rows(processed, columns=["id", "label", "split", "image"]):
        (out / row["split"] / row["label"] / _file_name(row)).write_bytes(row["image"]["bytes"])
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
