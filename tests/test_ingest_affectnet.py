from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer.dataset import read_rejects, read_table
from fer.errors import FerDataError
from fer.formats.affectnet_csv import AFFECTNET_COLUMNS, AffectNetCsvSource
from fer.ingest import ingest_source
from tests.conftest import encode, face_like

HEADER = [*AFFECTNET_COLUMNS, "expression", "valence", "arousal"]
LANDMARKS = ";".join(f"{v:.2f}" for v in np.linspace(10, 90, 136))


def _row(
    path: str, expression: str = "1", box=("10", "12", "70", "72"), landmarks: str = LANDMARKS
):
    return [path, *box, landmarks, expression, "0.5", "-0.25"]


def _source(
    tmp_path: Path, rows: list[list[str]], images: dict[str, bytes], header=HEADER, **kwargs
) -> AffectNetCsvSource:
    root = tmp_path / "affectnet"
    for relative, payload in images.items():
        (root / "images" / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / "images" / relative).write_bytes(payload)
    (root / "images").mkdir(parents=True, exist_ok=True)
    with (root / "training.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return AffectNetCsvSource("an", root, annotations="training.csv", images="images", **kwargs)


def _jpeg(seed=0):
    gray = face_like(96, seed)
    return encode(Image.fromarray(np.stack([gray] * 3, axis=-1)))


def _ingest(source, params, tmp_path):
    summary = ingest_source(source, params, tmp_path / "out", progress=False)
    return (
        summary,
        read_table(tmp_path / "out").to_pylist(),
        read_rejects(tmp_path / "out").to_pylist(),
    )


def test_rows_keep_box_landmarks_valence_arousal(tmp_path, ingest_params):
    source = _source(
        tmp_path,
        [_row("1213/b.jpg", "6"), _row("689/a.jpg", "0")],
        {"1213/b.jpg": _jpeg(1), "689/a.jpg": _jpeg(2)},
        split="train",
    )
    summary, rows, rejects = _ingest(source, ingest_params, tmp_path)
    assert [r["id"] for r in rows] == ["an/1213/b.jpg", "an/689/a.jpg"], "sorted by id"
    first = rows[0]
    assert first["source_label"] == "6" and first["source_split"] == "train"
    assert first["source_box"] == {"x": 10.0, "y": 12.0, "w": 70.0, "h": 72.0}
    assert len(first["source_landmarks"]) == 136
    assert first["source_landmarks"][0] == pytest.approx(10.0)
    assert first["valence"] == pytest.approx(0.5) and first["arousal"] == pytest.approx(-0.25)
    assert rejects == [] and summary["kept_by_source_label"] == {"0": 1, "6": 1}


def test_bad_rows_are_counted_rejects(tmp_path, ingest_params):
    rows = [
        _row("ok/a.jpg"),
        _row("../../etc/passwd"),
        _row("/abs/path.jpg"),
        _row("ok/missing.jpg"),
        _row("ok/a.jpg"),  # same path again: duplicate id
        _row("ok/b.jpg", expression="happy"),
        _row("ok/c.jpg", box=("1", "2", "-5", "10")),
        _row("ok/d.jpg", landmarks="1;2;3"),
        _row("ok/e.jpg"),
    ]
    images = {
        "ok/a.jpg": _jpeg(1),
        "ok/b.jpg": _jpeg(2),
        "ok/c.jpg": _jpeg(3),
        "ok/d.jpg": _jpeg(4),
        "ok/e.jpg": _jpeg(5)[:700],
    }
    summary, kept, rejects = _ingest(_source(tmp_path, rows, images), ingest_params, tmp_path)
    assert [r["id"] for r in kept] == ["an/ok/a.jpg"]
    assert {r["locator"]: r["reason"] for r in rejects} == {
        "training.csv:3": "path_escapes_root",
        "training.csv:4": "path_escapes_root",
        "training.csv:5": "missing_file",
        "training.csv:6": "duplicate_id",
        "training.csv:7": "bad_label",
        "training.csv:8": "bad_face_box",
        "training.csv:9": "bad_landmarks",
        "training.csv:10": "truncated_image",
    }
    assert summary["total"] == len(rows)


def test_label_column_can_be_renamed(tmp_path, ingest_params):
    header = [h if h != "expression" else "original" for h in HEADER]
    source = _source(
        tmp_path,
        [_row("x/a.jpg", "3")],
        {"x/a.jpg": _jpeg()},
        header=header,
        label_column="original",
    )
    _, rows, _ = _ingest(source, ingest_params, tmp_path)
    assert rows[0]["source_label"] == "3"


def test_header_without_required_columns_is_a_clear_error(tmp_path, ingest_params):
    source = _source(
        tmp_path, [_row("x/a.jpg")], {"x/a.jpg": _jpeg()}, header=HEADER[:4] + ["x"] * 5
    )
    with pytest.raises(FerDataError, match=r"training\.csv:1: header lacks face_height"):
        ingest_source(source, ingest_params, tmp_path / "o")


def test_real_annotation_sample_header(shared_data, tmp_path, ingest_params):
    """The shared AffectNet sample (800 rows, label column 'original'), with images we make."""
    real_csv = shared_data / "affectnet" / "expression_set1_C25.csv"
    with real_csv.open(newline="") as f:
        records = list(csv.DictReader(f))
    root = tmp_path / "an"
    (root / "images").mkdir(parents=True)
    (root / "training.csv").write_bytes(real_csv.read_bytes())
    for i, record in enumerate(records[:40]):
        target = root / "images" / record["subDirectory_filePath"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_jpeg(i))
    source = AffectNetCsvSource(
        "an", root, annotations="training.csv", images="images", label_column="original"
    )
    summary, rows, _ = _ingest(source, ingest_params, tmp_path)
    assert summary["total"] == len(records) == 800
    # The real boxes point into the real (larger) photos: those wholly outside our 96 px
    # stand-ins are bad_face_box, the rest are clipped with a note.
    by_reason = summary["rejected_by_reason"]
    assert by_reason["missing_file"] == 760
    assert summary["kept"] + by_reason.get("bad_face_box", 0) == 40 and summary["kept"] >= 30
    for row in rows:
        box = row["source_box"]
        assert box["x"] >= 0 and box["x"] + box["w"] <= 96 and box["y"] + box["h"] <= 96
    assert all(len(r["source_landmarks"]) == 136 for r in rows)
    assert {r["source_label"] for r in rows} <= {str(i) for i in range(8)}
    image = Image.open(io.BytesIO(rows[0]["image"]["bytes"]))
    assert image.size == (96, 96)
