from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fer.config import IngestParams, parse_params
from fer.dataset import read_rejects, read_table
from fer.ingest import ingest_source
from tests.conftest import encode, face_like


def _jpeg(seed: int) -> bytes:
    return encode(Image.fromarray(np.stack([face_like(100, seed)] * 3, axis=-1)))


def _rafdb(root: Path, lines: list[str], images: dict[str, bytes], folder: str) -> None:
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    (root / "Image" / folder).mkdir(parents=True)
    for name, data in images.items():
        (root / "Image" / folder / name).write_bytes(data)


def test_rafdb_aligned_layout_with_one_based_labels(tmp_path):
    lines = [
        "train_00002.jpg 4",
        "train_00001.jpg 5",
        "test_0001.jpg 1",
        "test_0002.jpg 7",
        "train_00003.jpg 8",
        "train_00004.jpg",
        "train_00005.jpg 6",
    ]
    images = {
        "train_00001_aligned.jpg": _jpeg(1),
        "train_00002_aligned.jpg": _jpeg(2),
        "test_0001_aligned.jpg": _jpeg(3),
        "test_0002_aligned.jpg": _jpeg(4),
    }
    _rafdb(tmp_path / "raf", lines, images, "aligned")
    params = parse_params({"sources": {"raf": {"format": "rafdb", "path": "raf"}}}, root=tmp_path)
    summary = ingest_source(
        params.sources["raf"], IngestParams(workers=1), tmp_path / "out", progress=False
    )
    rows = read_table(tmp_path / "out").to_pylist()
    assert [(r["id"], r["source_label"], r["source_split"]) for r in rows] == [
        ("raf/test_0001.jpg", "1", "test"),
        ("raf/test_0002.jpg", "7", "test"),
        ("raf/train_00001.jpg", "5", "train"),
        ("raf/train_00002.jpg", "4", "train"),
    ]
    label_map = params.dedup.label_maps["raf"]
    assert [label_map[r["source_label"]] for r in rows] == ["surprise", "neutral", "sad", "happy"]
    reasons = sorted(r["reason"] for r in read_rejects(tmp_path / "out").to_pylist())
    assert reasons == ["bad_label", "bad_line", "missing_file"]
    assert summary["total"] == len(lines) == summary["kept"] + summary["rejected"]


def test_rafdb_original_images_keep_their_names(tmp_path):
    _rafdb(tmp_path / "raf", ["train_00001.jpg 6"], {"train_00001.jpg": _jpeg(5)}, "original")
    params = parse_params(
        {"sources": {"raf": {"format": "rafdb", "path": "raf", "images": "Image/original"}}},
        root=tmp_path,
    )
    ingest_source(params.sources["raf"], IngestParams(workers=1), tmp_path / "o", progress=False)
    rows = read_table(tmp_path / "o").to_pylist()
    assert rows[0]["image"]["path"] == "Image/original/train_00001.jpg"
    assert params.dedup.label_maps["raf"]["6"] == "angry"
