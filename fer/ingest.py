"""Ingest: turn one raw source into a validated dataset of the DESIGN.md table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from fer.config import IngestParams
from fer.dataset import INGEST_SCHEMA, DatasetWriter
from fer.errors import FerDataError
from fer.formats import SourceParams, formats
from fer.formats.common import Kept, Refused

__all__ = ["ingest_source", "read_source"]


def read_source(source: SourceParams, params: IngestParams) -> Iterator[Kept | Refused]:
    """Kept rows (sorted by id) and refusals of one source, as a stream."""
    if not source.path.exists():
        raise FerDataError(
            f"{source.path}: input of source '{source.name}' not found; fix sources.{source.name}.path "
            "in params.yaml or put the data there (`fer-data sample data/raw` writes a sample)"
        )
    entry = formats().lookup(source.format, f"sources.{source.name}.format")
    return entry.read(source, max_image_pixels=params.max_image_pixels, workers=params.workers)


def ingest_source(
    source: SourceParams,
    params: IngestParams,
    out_dir: str | Path,
    shard_bytes: int = 128 * 2**20,
    progress: bool = True,
) -> dict[str, Any]:
    """Ingest one source into `out_dir` (shards, rejects, summary); returns the summary."""
    items = read_source(source, params)
    summary_fields = {"stage": "ingest", "source": source.name, "format": source.format}
    with DatasetWriter(
        out_dir,
        INGEST_SCHEMA,
        shard_bytes=shard_bytes,
        summary_fields=summary_fields,
        count_columns=("source_label", "source_split"),
    ) as writer:
        for item in tqdm(
            items, desc=f"ingest {source.name}", unit="row", disable=not progress, mininterval=1.0
        ):
            if isinstance(item, Kept):
                writer.add(item.row, item.locator)
            else:
                writer.reject_with(source.name, item.row_id, item.locator, item.why)
        return writer.close()
