from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from fer.config import IngestParams
from fer.dataset import read_rejects, read_table
from fer.errors import FerDataError
from fer.formats.image_folder import ImageFolderSource
from fer.ingest import ingest_source
from fer.sample import _bomb_png
from tests.conftest import encode, face_like


def _jpeg(seed: int = 0, side: int = 96) -> bytes:
    gray = face_like(side, seed)
    return encode(Image.fromarray(np.stack([gray] * 3, axis=-1)))


def _ingest(root, params, tmp_path, **kwargs):
    summary = ingest_source(
        ImageFolderSource("an", root, **kwargs), params, tmp_path / "out", progress=False
    )
    return (
        summary,
        read_table(tmp_path / "out").to_pylist(),
        read_rejects(tmp_path / "out").to_pylist(),
    )


def test_kaggle_affectnet_layout(write_files, ingest_params, tmp_path):
    root = write_files(
        {"anger/image0000197.jpg": _jpeg(1), "happy/b.jpg": _jpeg(2), "happy/a.jpg": _jpeg(3)}
    )
    summary, rows, rejects = _ingest(root, ingest_params, tmp_path)
    assert [r["id"] for r in rows] == [
        "an/anger/image0000197.jpg",
        "an/happy/a.jpg",
        "an/happy/b.jpg",
    ]
    assert [r["source_label"] for r in rows] == ["anger", "happy", "happy"]
    assert all(r["source_split"] is None for r in rows)
    assert rows[0]["image"]["path"] == "anger/image0000197.jpg"
    assert rows[0]["image"]["bytes"] == _jpeg(1), "clean JPEGs are stored untouched"
    assert (rows[0]["width"], rows[0]["height"], rows[0]["channels"]) == (96, 96, 3)
    assert rejects == [] and summary["kept"] == 3


def test_fer2013_train_test_layout_gives_source_split(write_files, ingest_params, tmp_path):
    root = write_files(
        {"train/happy/Training_1.jpg": _jpeg(1), "test/sad/PublicTest_2.jpg": _jpeg(2)}
    )
    summary, rows, _ = _ingest(root, ingest_params, tmp_path)
    assert {(r["source_label"], r["source_split"]) for r in rows} == {
        ("happy", "train"),
        ("sad", "test"),
    }
    assert summary["kept_by_source_split"] == {"test": 1, "train": 1}


def test_numeric_folders_and_any_depth(write_files, ingest_params, tmp_path):
    root = write_files(
        {
            "0/x.jpg": _jpeg(1),
            "7/y.jpg": _jpeg(2),
            "ck/S005/001/surprise/z.png": encode(Image.fromarray(face_like(64)), "PNG"),
        }
    )
    _, rows, _ = _ingest(root, ingest_params, tmp_path)
    assert {r["id"]: r["source_label"] for r in rows} == {
        "an/0/x.jpg": "0",
        "an/7/y.jpg": "7",
        "an/ck/S005/001/surprise/z.png": "surprise",
    }


def test_custom_split_folders(write_files, ingest_params, tmp_path):
    root = write_files({"holdout/happy/a.jpg": _jpeg(1)})
    _, rows, _ = _ingest(root, ingest_params, tmp_path, split_folders=("holdout",))
    assert rows[0]["source_split"] == "holdout"


def test_every_bad_file_is_a_counted_reject(write_files, ingest_params, tmp_path):
    files = {
        "happy/ok.jpg": _jpeg(1),
        "happy/empty.jpg": b"",
        "happy/truncated.jpg": _jpeg(2, 160)[:1500],
        "happy/caption.txt": b"not an image",
        "happy/bomb.png": _bomb_png(),
        "readme.md": b"# about",
    }
    root = write_files(files)
    summary, rows, rejects = _ingest(root, ingest_params, tmp_path)
    assert [r["id"] for r in rows] == ["an/happy/ok.jpg"]
    assert {r["locator"]: r["reason"] for r in rejects} == {
        "happy/empty.jpg": "empty_file",
        "happy/truncated.jpg": "truncated_image",
        "happy/caption.txt": "not_an_image",
        "happy/bomb.png": "decompression_bomb",
        "readme.md": "no_class_folder",
    }
    assert summary["total"] == len(files) == summary["kept"] + summary["rejected"]


def test_normalisation_notes_are_counted(write_files, ingest_params, tmp_path):
    rgb = Image.open(io.BytesIO(_jpeg(1)))
    root = write_files(
        {"sad/cmyk.jpg": encode(rgb.convert("CMYK")), "sad/p.png": encode(rgb.convert("P"), "PNG")}
    )
    summary, rows, _ = _ingest(root, ingest_params, tmp_path)
    assert summary["notes"] == {"mode_CMYK_to_RGB": 1, "mode_P_to_RGB": 1}
    assert {tuple(r["notes"]) for r in rows} == {("mode_CMYK_to_RGB",), ("mode_P_to_RGB",)}


def test_parallel_workers_give_the_same_bytes(write_files, tmp_path):
    root = write_files({f"c{i % 3}/img{i:04d}.jpg": _jpeg(i, 48) for i in range(300)})
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        ingest_source(
            ImageFolderSource("an", root), IngestParams(workers=workers), out, progress=False
        )
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outputs[0] == outputs[1]


def test_missing_folder_is_a_clear_error(tmp_path, ingest_params):
    with pytest.raises(FerDataError, match="not found"):
        ingest_source(ImageFolderSource("an", tmp_path / "absent"), ingest_params, tmp_path / "o")


def test_refuses_to_overwrite_a_folder_that_is_not_a_dataset(write_files, ingest_params, tmp_path):
    root = write_files({"happy/a.jpg": _jpeg(1)})
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    with pytest.raises(FerDataError, match="not a fer-data dataset"):
        ingest_source(ImageFolderSource("an", root), ingest_params, precious)
    assert (precious / "thesis.tex").exists()
