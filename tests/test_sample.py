from __future__ import annotations

import json
from pathlib import Path

import pytest

from fer.config import IngestParams
from fer.dataset import read_rejects, read_table
from fer.formats.fer2013_csv import Fer2013CsvSource
from fer.formats.image_folder import ImageFolderSource
from fer.ingest import ingest_source
from fer.sample import AFFECTNET_FOLDERS, GROUND_TRUTH_FILE, write_sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> dict:
    raw = tmp_path_factory.mktemp("raw")
    truth = write_sample(raw)
    out = tmp_path_factory.mktemp("out")
    params = IngestParams(workers=1)
    for source in (
        Fer2013CsvSource("fer2013", raw / "fer2013.csv"),
        ImageFolderSource("affectnet", raw / "affectnet"),
    ):
        ingest_source(source, params, out / source.name, progress=False)
    kept = {
        r["id"]: r for name in ("fer2013", "affectnet") for r in read_table(out / name).to_pylist()
    }
    rejects = [r for name in ("fer2013", "affectnet") for r in read_rejects(out / name).to_pylist()]
    return {"raw": raw, "truth": truth, "kept": kept, "rejects": rejects}


def test_ground_truth_file_matches_returned_truth(sample):
    assert json.loads((sample["raw"] / GROUND_TRUTH_FILE).read_text()) == sample["truth"]


def test_every_planted_bad_input_is_rejected_for_its_reason(sample):
    found = {(r["source"], r["locator"]): r["reason"] for r in sample["rejects"]}
    planted = {(r["source"], r["locator"]): r["reason"] for r in sample["truth"]["rejects"]}
    assert found == planted
    assert len(planted) >= 12


def test_every_planted_duplicate_survives_ingest(sample):
    duplicates = sample["truth"]["duplicates"]
    assert any(d["cross_source"] for d in duplicates)
    assert {d["kind"] for d in duplicates} == {"exact", "near"}
    for group in duplicates:
        assert all(i in sample["kept"] for i in group["ids"]), group
    exact = [d for d in duplicates if d["kind"] == "exact"]
    for group in exact:
        first, second = (sample["kept"][i]["image"]["bytes"] for i in group["ids"])
        assert first == second


def test_normalised_files_carry_their_note(sample):
    for item in sample["truth"]["normalised"]:
        assert item["note"] in sample["kept"][item["id"]]["notes"]


def test_faces_and_non_faces_are_kept(sample):
    assert len(sample["truth"]["non_faces"]) == 8
    assert all(
        i in sample["kept"] for i in sample["truth"]["non_faces"] + sample["truth"]["astronaut"]
    )


def test_sample_is_deterministic(tmp_path, sample):
    write_sample(tmp_path)
    for relative in ("fer2013.csv", GROUND_TRUTH_FILE):
        assert (tmp_path / relative).read_bytes() == (sample["raw"] / relative).read_bytes()
    mine = sorted(p.relative_to(tmp_path) for p in (tmp_path / "affectnet").rglob("*"))
    theirs = sorted(p.relative_to(sample["raw"]) for p in (sample["raw"] / "affectnet").rglob("*"))
    assert mine == theirs
    for relative in mine:
        if (tmp_path / relative).is_file():
            assert (tmp_path / relative).read_bytes() == (sample["raw"] / relative).read_bytes()


def test_sample_labels_cover_all_classes(sample):
    fer_labels = {r["source_label"] for r in sample["kept"].values() if r["source"] == "fer2013"}
    folders = {r["source_label"] for r in sample["kept"].values() if r["source"] == "affectnet"}
    assert fer_labels == {str(i) for i in range(7)}
    assert folders == set(AFFECTNET_FOLDERS)


def test_sample_writes_into_existing_folder_without_leftovers(tmp_path):
    (tmp_path / "affectnet" / "stale").mkdir(parents=True)
    (tmp_path / "affectnet" / "stale" / "old.jpg").write_bytes(b"x")
    write_sample(tmp_path)
    assert not (tmp_path / "affectnet" / "stale").exists()
    assert Path(tmp_path / "fer2013.csv").exists()
