from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from fer.dataset import read_rejects, read_summary, read_table
from fer.errors import FerDataError
from fer.formats.fer2013_csv import FERPLUS_CLASSES, Fer2013CsvSource, ferplus_majority
from fer.ingest import ingest_source
from tests.conftest import face_like, pixels_text

GOOD = [(0, "Training"), (3, "PublicTest"), (6, "PrivateTest"), (1, "Training")]


def _good_line(i: int) -> str:
    label, usage = GOOD[i]
    return f"{label},{pixels_text(face_like(48, seed=i))},{usage}"


# One bad row of each kind, with the reason it must be rejected for.
BAD_ROWS = {
    "label_out_of_range": lambda: f"7,{pixels_text(face_like())},Training",
    "bad_label": lambda: f"happy,{pixels_text(face_like())},Training",
    "wrong_pixel_count": lambda: f"2,{pixels_text(face_like()[:47])},Training",
    "pixel_out_of_range": lambda: (
        "2," + "256 " + pixels_text(face_like().ravel()[1:]) + ",Training"
    ),
    "bad_pixel_value": lambda: "2," + "1.5 " + pixels_text(face_like().ravel()[1:]) + ",Training",
    "unknown_usage": lambda: f"2,{pixels_text(face_like())},Validation",
    "wrong_column_count": lambda: f"2,{pixels_text(face_like())}",
    "blank_line": lambda: "",
}


def _write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("emotion,pixels,Usage\n" + "\n".join(lines) + "\n")
    return path


def _ingest(
    tmp_path: Path, source: Fer2013CsvSource, params
) -> tuple[dict, list[dict], list[dict]]:
    out = tmp_path / "out"
    summary = ingest_source(source, params, out, progress=False)
    rows = read_table(out).to_pylist()
    rejects = read_rejects(out).to_pylist()
    return summary, rows, rejects


def test_good_rows_become_48x48_grayscale_png(tmp_path, ingest_params):
    csv = _write_csv(tmp_path / "fer.csv", [_good_line(i) for i in range(4)])
    summary, rows, rejects = _ingest(tmp_path, Fer2013CsvSource("fer", csv), ingest_params)
    assert [r["id"] for r in rows] == ["fer/000000", "fer/000001", "fer/000002", "fer/000003"]
    assert [r["source_label"] for r in rows] == ["0", "3", "6", "1"]
    assert [r["source_split"] for r in rows] == [
        "Training",
        "PublicTest",
        "PrivateTest",
        "Training",
    ]
    assert rejects == []
    for i, row in enumerate(rows):
        image = Image.open(io.BytesIO(row["image"]["bytes"]))
        assert image.format == "PNG" and image.mode == "L" and image.size == (48, 48)
        np.testing.assert_array_equal(np.asarray(image), face_like(48, seed=i))
        assert (row["width"], row["height"], row["channels"]) == (48, 48, 1)
    assert summary["kept_by_source_label"] == {"0": 1, "1": 1, "3": 1, "6": 1}


def test_one_bad_row_of_each_kind_is_one_reject_with_line_and_reason(tmp_path, ingest_params):
    lines, expected = [], {}
    for i, (reason, make) in enumerate(BAD_ROWS.items()):
        lines.append(_good_line(i % 4))
        lines.append(make())
        expected[f"fer.csv:{len(lines) + 1}"] = reason
    csv = _write_csv(tmp_path / "fer.csv", lines)
    summary, rows, rejects = _ingest(tmp_path, Fer2013CsvSource("fer", csv), ingest_params)

    clean = _write_csv(tmp_path / "clean.csv", [_good_line(i % 4) for i in range(len(BAD_ROWS))])
    _, clean_rows, _ = _ingest(tmp_path / "c", Fer2013CsvSource("fer", clean), ingest_params)
    assert [r["image"]["bytes"] for r in rows] == [r["image"]["bytes"] for r in clean_rows]
    assert {r["locator"]: r["reason"] for r in rejects} == expected
    assert all(r["detail"] for r in rejects)
    assert summary["total"] == summary["kept"] + summary["rejected"] == len(lines)
    assert summary["rejected_by_reason"] == {reason: 1 for reason in BAD_ROWS}
    assert sum(summary["rejected_by_reason"].values()) == summary["rejected"]


def test_missing_csv_is_a_clear_error(tmp_path, ingest_params):
    with pytest.raises(FerDataError, match=r"nope\.csv.*not found"):
        ingest_source(Fer2013CsvSource("fer", tmp_path / "nope.csv"), ingest_params, tmp_path / "o")


@pytest.mark.parametrize("header", ["label,pixels,Usage", "emotion;pixels;Usage", ""])
def test_malformed_header_is_a_clear_error(tmp_path, ingest_params, header):
    csv = tmp_path / "fer.csv"
    csv.write_text(header + "\n" + _good_line(0) + "\n")
    with pytest.raises(FerDataError, match=r"fer\.csv"):
        ingest_source(Fer2013CsvSource("fer", csv), ingest_params, tmp_path / "o")
    assert not (tmp_path / "o").exists(), "a failed ingest must not leave an output behind"


def test_same_input_gives_identical_bytes(tmp_path, ingest_params):
    csv = _write_csv(
        tmp_path / "fer.csv", [_good_line(i) for i in range(4)] + [BAD_ROWS["bad_label"]()]
    )
    source = Fer2013CsvSource("fer", csv)
    outputs = []
    for run in ("a", "b"):
        ingest_source(source, ingest_params, tmp_path / run, progress=False)
        outputs.append({p.name: p.read_bytes() for p in sorted((tmp_path / run).iterdir())})
    assert outputs[0] == outputs[1]


def test_small_shards_split_the_rows_and_keep_order(tmp_path):
    from fer.config import IngestParams

    lines = [_good_line(i % 4) for i in range(3000)]
    csv = _write_csv(tmp_path / "fer.csv", lines)
    params = IngestParams(workers=1)
    summary = ingest_source(
        Fer2013CsvSource("fer", csv), params, tmp_path / "o", shard_bytes=2**20, progress=False
    )
    assert len(summary["shards"]) >= 2
    ids = read_table(tmp_path / "o", columns=["id"]).column("id").to_pylist()
    assert ids == sorted(ids) and len(ids) == 3000
    assert pq.read_metadata(tmp_path / "o" / summary["shards"][0]).num_rows < 3000


# FER+ ----------------------------------------------------------------------------------------

FERPLUS_HEADER = "Usage,Image name," + ",".join(FERPLUS_CLASSES)


def test_ferplus_majority_matches_reference_rule():
    votes = np.array(
        [
            [
                4,
                0,
                0,
                1,
                3,
                2,
                0,
                0,
                0,
                0,
            ],  # neutral 4 of 9 after dropping the single vote: no majority
            [6, 0, 1, 1, 0, 0, 0, 0, 2, 0],  # neutral 6 of 8 (single votes dropped): neutral
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # NF
            [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],  # all single votes: nothing left, no majority
            [0, 2, 0, 0, 0, 0, 0, 0, 8, 0],  # unknown wins
            [0, 5, 5, 0, 0, 0, 0, 0, 0, 0],  # a tie is not a majority
        ]
    )
    assert ferplus_majority(votes).tolist() == [-1, 0, 9, -1, 8, -1]


def _ferplus_files(tmp_path: Path, usages: list[str], votes: list[str]) -> Fer2013CsvSource:
    folder = tmp_path / "fer"
    folder.mkdir()
    lines = [f"{_good_line(i % 4).rsplit(',', 1)[0]},{u}" for i, u in enumerate(usages)]
    _write_csv(folder / "fer2013.csv", lines)
    names = [f"fer{i:07d}.png" if v != "EMPTY" else "" for i, v in enumerate(votes)]
    body = [
        f"{u},{n},{v if v != 'EMPTY' else '0,0,0,0,0,0,0,0,0,10'}"
        for u, n, v in zip(usages, names, votes, strict=True)
    ]
    (folder / "fer2013new.csv").write_text(FERPLUS_HEADER + "\n" + "\n".join(body) + "\n")
    return Fer2013CsvSource("fer", folder, csv="fer2013.csv", labels="fer2013new.csv")


def test_ferplus_relabels_by_row_order_and_rejects_with_reason(tmp_path, ingest_params):
    source = _ferplus_files(
        tmp_path,
        ["Training"] * 5,
        [
            "0,8,1,0,0,0,0,1,0,0",  # happiness
            "0,0,0,0,0,0,0,0,7,3",  # unknown
            "0,0,0,0,0,0,0,0,0,10",  # NF
            "3,3,2,0,0,0,0,2,0,0",  # no majority
            "EMPTY",
        ],
    )
    summary, rows, rejects = _ingest(tmp_path, source, ingest_params)
    assert [(r["id"], r["source_label"]) for r in rows] == [("fer/000000", "happiness")]
    assert rows[0]["label_votes"] == [0, 8, 1, 0, 0, 0, 0, 1, 0, 0]
    assert {r["id"]: r["reason"] for r in rejects} == {
        "fer/000001": "ferplus_unknown",
        "fer/000002": "ferplus_nf",
        "fer/000003": "ferplus_no_majority",
        "fer/000004": "ferplus_no_image",
    }
    assert summary["total"] == 5


def test_ferplus_row_count_mismatch_is_an_error(tmp_path, ingest_params):
    source = _ferplus_files(tmp_path, ["Training"] * 3, ["0,8,0,0,0,0,0,0,0,0"] * 3)
    labels = source.labels_path
    labels.write_text("\n".join(labels.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(FerDataError, match=r"2 FER\+ rows but .* has 3 data rows"):
        ingest_source(source, ingest_params, tmp_path / "o")


def test_ferplus_usage_disagreement_means_wrong_row_order(tmp_path, ingest_params):
    source = _ferplus_files(tmp_path, ["Training", "PublicTest"], ["0,8,0,0,0,0,0,0,0,0"] * 2)
    labels = source.labels_path
    labels.write_text(labels.read_text().replace("PublicTest", "PrivateTest"))
    with pytest.raises(FerDataError, match="not in the same row order"):
        ingest_source(source, ingest_params, tmp_path / "o")


def test_ferplus_bad_header_is_an_error(tmp_path, ingest_params):
    source = _ferplus_files(tmp_path, ["Training"], ["0,8,0,0,0,0,0,0,0,0"])
    source.labels_path.write_text("Usage,name,a,b\nTraining,x,1,2\n")
    with pytest.raises(FerDataError, match="header is not FER"):
        ingest_source(source, ingest_params, tmp_path / "o")


def test_summary_json_is_valid_and_adds_up(tmp_path, ingest_params):
    csv = _write_csv(tmp_path / "fer.csv", [_good_line(0), BAD_ROWS["unknown_usage"]()])
    ingest_source(Fer2013CsvSource("fer", csv), ingest_params, tmp_path / "o", progress=False)
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary == read_summary(tmp_path / "o")
    assert summary["stage"] == "ingest" and summary["format"] == "fer2013_csv"
    assert summary["total"] == 2 and summary["kept"] == 1 and summary["rejected"] == 1
