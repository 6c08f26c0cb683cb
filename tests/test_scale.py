"""Memory is bounded by a batch, not by the dataset: dedup on twice the rows of large images
peaks at no more than 1.25x the memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from fer.config import CropRuntime, CropSettings
from fer.crop import crop_source
from fer.dataset import INGEST_SCHEMA, DatasetWriter
from fer.formats.common import image_row
from fer.images import StoredImage, pixel_hash
from tests.conftest import encode

ROOT = Path(__file__).resolve().parents[1]
_DEDUP_PEAK = """
import json, resource, sys
from fer.config import DedupParams
from fer.dedup import dedup_sources
from fer.labels import resolve_label_map
crop, ingest, out = sys.argv[1:4]
params = DedupParams(workers=1, label_maps={"src": resolve_label_map("names", "label_maps.src")})
summary = dedup_sources({"src": crop}, {"src": ingest}, params, out, progress=False)
print(json.dumps({"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "kept": summary["kept"]}))
"""


def _noise_source(folder: Path, count: int) -> tuple[Path, Path]:
    """`count` 512 px noise photos (JPEG q95, ~0.4 MB each): what dedup must not hold."""
    rng = np.random.default_rng(count)
    classes = ("happy", "sad", "angry")
    with DatasetWriter(folder / "ingest", INGEST_SCHEMA, 2**24, {"stage": "ingest"}) as writer:
        for k in range(count):
            pixels = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
            data = encode(Image.fromarray(pixels), "JPEG", quality=95)
            stored = StoredImage(data, 512, 512, 3, pixel_hash=pixel_hash(pixels))
            row = image_row(
                row_id=f"src/{k:05d}",
                source="src",
                source_label=classes[k % 3],
                source_split=None,
                image=stored,
                path=None,
            )
            writer.add(row, row["id"])
        writer.close()
    crop_source(
        folder / "ingest",
        CropSettings(enabled=False),
        CropRuntime(device="cpu"),
        folder / "crop",
        shard_bytes=2**24,
        progress=False,
    )
    return folder / "crop", folder / "ingest"


def _dedup_peak_kb(folder: Path, count: int) -> int:
    crop, ingest = _noise_source(folder, count)
    done = subprocess.run(
        [sys.executable, "-c", _DEDUP_PEAK, str(crop), str(ingest), str(folder / "dedup")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["kept"] == count
    return result["peak"]


def test_dedup_memory_does_not_grow_with_the_rows(tmp_path):
    small = _dedup_peak_kb(tmp_path / "small", 300)  # ~120 MB of JPEG
    large = _dedup_peak_kb(tmp_path / "large", 600)  # ~240 MB: holding it would show
    assert large <= 1.25 * small, (small, large)


def test_row_groups_are_bounded_by_bytes_and_add_table_matches_add(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fer.dataset import dataset_shards

    rng = np.random.default_rng(1)
    rows = []
    for k in range(40):
        data = rng.bytes(int(rng.integers(50, 400)))
        stored = StoredImage(data, 1, 1, 1, pixel_hash=str(k))
        rows.append(
            image_row(
                row_id=f"s/{k:03d}",
                source="s",
                source_label="happy",
                source_split=None,
                image=stored,
                path=None,
            )
        )
    folders = {}
    for way in ("add", "add_table"):
        folder = tmp_path / way
        with DatasetWriter(folder, INGEST_SCHEMA, 2**20, {}, group_bytes=1000) as writer:
            if way == "add":
                for row in rows:
                    writer.add(row, row["id"])
            else:
                writer.add_table(pa.Table.from_pylist(rows[:25], schema=INGEST_SCHEMA))
                writer.add_table(pa.Table.from_pylist(rows[25:], schema=INGEST_SCHEMA))
            writer.close()
        folders[way] = [p.read_bytes() for p in dataset_shards(folder)]
        file = pq.ParquetFile(dataset_shards(folder)[0])
        groups = [file.read_row_group(g) for g in range(file.num_row_groups)]
        assert sum(g.num_rows for g in groups) == 40 and len(groups) > 5
        for group in groups:
            sizes = [len(image["bytes"]) for image in group.column("image").to_pylist()]
            assert sum(sizes[:-1]) < 1000  # the budget, reached by the last row at most
    assert folders["add"] == folders["add_table"]
    # Image bytes are stored as they are (JPEG and PNG do not compress); the rest is zstd.
    columns = file.metadata.row_group(0)
    codecs = {
        columns.column(c).path_in_schema: columns.column(c) for c in range(columns.num_columns)
    }
    assert codecs["image.bytes"].compression == "UNCOMPRESSED"
    assert "PLAIN_DICTIONARY" not in codecs["image.bytes"].encodings
    assert "RLE_DICTIONARY" not in codecs["image.bytes"].encodings
    assert {c.compression for p, c in codecs.items() if p != "image.bytes"} == {"ZSTD"}
