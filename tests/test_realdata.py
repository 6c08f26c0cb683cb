"""Ingest of the real FER2013 data in ../shared/data (skipped where it is absent)."""

from __future__ import annotations

import gzip
import tarfile

import pytest

from fer.config import IngestParams
from fer.dataset import read_rejects, read_table
from fer.formats.fer2013_csv import FERPLUS_CLASSES, Fer2013CsvSource
from fer.formats.image_folder import ImageFolderSource
from fer.ingest import ingest_source
from fer.sample import FER2013_NAMES

pytestmark = pytest.mark.realdata

FER2013_CLASS_COUNTS = {"0": 4953, "1": 547, "2": 5121, "3": 8989, "4": 6077, "5": 4002, "6": 6198}
FER2013_USAGE_COUNTS = {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}


def test_full_fer2013_csv(real_fer2013_csv, tmp_path):
    out = tmp_path / "fer2013"
    summary = ingest_source(
        Fer2013CsvSource("fer2013", real_fer2013_csv), IngestParams(), out, progress=False
    )
    assert summary["kept"] == summary["total"] == 35887 and summary["rejected"] == 0
    assert summary["kept_by_source_label"] == FER2013_CLASS_COUNTS
    assert summary["kept_by_source_split"] == FER2013_USAGE_COUNTS
    ids = read_table(out, columns=["id"]).column("id").to_pylist()
    assert ids[0] == "fer2013/000000" and ids[-1] == "fer2013/035886" and ids == sorted(ids)


def test_original_csv_head_with_ferplus_labels(shared_data, tmp_path):
    """The byte-exact head of the original fer2013.csv, relabelled by the matching FER+ rows."""
    folder = tmp_path / "fer"
    folder.mkdir()
    head = gzip.decompress((shared_data / "fer2013" / "fer2013_original_head.csv.gz").read_bytes())
    (folder / "fer2013.csv").write_bytes(head)
    rows = head.decode().strip().splitlines()
    ferplus = (shared_data / "ferplus" / "fer2013new.csv").read_text().splitlines()
    (folder / "fer2013new.csv").write_text("\n".join(ferplus[: len(rows)]) + "\n")
    source = Fer2013CsvSource("fer2013", folder, csv="fer2013.csv", labels="fer2013new.csv")
    summary = ingest_source(source, IngestParams(workers=1), tmp_path / "out", progress=False)
    assert summary["total"] == len(rows) - 1 == 1167
    kept = {
        r["id"]: r["source_label"]
        for r in read_table(tmp_path / "out", columns=["id", "source_label"]).to_pylist()
    }
    rejects = {r["id"]: r["reason"] for r in read_rejects(tmp_path / "out").to_pylist()}
    # fer0000000: votes 4,0,0,1,3,2 -> 4 of 9 after dropping the single vote: no majority.
    assert rejects["fer2013/000000"] == "ferplus_no_majority"
    # fer0000001: votes 6,0,1,1,0,0,0,0,2,0 -> neutral 6 of 8.
    assert kept["fer2013/000001"] == "neutral"
    assert set(summary["rejected_by_reason"]) <= {
        "ferplus_no_majority",
        "ferplus_unknown",
        "ferplus_nf",
        "ferplus_no_image",
    }
    assert summary["rejected_by_reason"].get("ferplus_no_image", 0) > 0
    assert set(kept.values()) <= set(FERPLUS_CLASSES[:8])


def test_real_image_folder_slice(shared_data, tmp_path):
    """Every 20th image of the real FER2013 image tarball, as an image_folder source."""
    root = tmp_path / "imgs"
    with tarfile.open(shared_data / "fer2013" / "fer2013_images.tar.gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile()][::20]
        tar.extractall(root, members=members, filter="data")
    summary = ingest_source(
        ImageFolderSource("fer_img", root), IngestParams(), tmp_path / "out", progress=False
    )
    assert summary["kept"] == len(members) and summary["rejected"] == 0
    rows = read_table(
        tmp_path / "out", columns=["id", "source_label", "source_split", "width", "channels"]
    ).to_pylist()
    for row in rows:
        split, label, name = row["id"].split("/")[1:]
        assert (row["source_split"], row["source_label"]) == (split, label)
        assert (row["width"], row["channels"]) == (48, 1)
        assert name.split("_")[0] in ("Training", "PublicTest", "PrivateTest")
    assert set(summary["kept_by_source_split"]) == {"train", "test"}
    assert set(summary["kept_by_source_label"]) == set(FER2013_NAMES)
