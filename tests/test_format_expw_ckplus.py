from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fer.config import IngestParams, parse_params
from fer.dataset import read_rejects, read_table
from fer.ingest import ingest_source
from tests.conftest import encode, face_like


def _photo(seed: int, side: int = 200) -> bytes:
    return encode(Image.fromarray(np.stack([face_like(side, seed)] * 3, axis=-1)))


def _ingest(tmp_path: Path, name: str, spec: dict) -> tuple[dict, list[dict], list[str], dict]:
    params = parse_params({"sources": {name: spec}}, root=tmp_path)
    summary = ingest_source(
        params.sources[name], IngestParams(workers=1), tmp_path / "out", progress=False
    )
    rows = read_table(tmp_path / "out").to_pylist()
    reasons = sorted(r["reason"] for r in read_rejects(tmp_path / "out").to_pylist())
    return summary, rows, reasons, params.dedup.label_maps[name]


def test_expw_one_row_per_listed_face_with_its_box_and_score(tmp_path):
    root = tmp_path / "expw"
    (root / "image" / "origin").mkdir(parents=True)
    for name, seed in (("angry_actor_104.jpg", 1), ("happy_family_9.jpg", 2)):
        (root / "image" / "origin" / name).write_bytes(_photo(seed))
    lines = [
        "happy_family_9.jpg 1 40 30 120 130 88.5 3",
        "happy_family_9.jpg 0 10 100 160 150 95.1 6",
        "angry_actor_104.jpg 0 20 40 160 180 70.2 0",
        "missing.jpg 0 1 1 50 50 60.0 4",
        "angry_actor_104.jpg 1 20 40 160 180 70.2 9",
        "angry_actor_104.jpg 2 90 40 30 180 70.2 1",
        "too few fields",
    ]
    (root / "label.lst").write_text("\n".join(lines) + "\n")
    summary, rows, reasons, label_map = _ingest(
        tmp_path, "expw", {"format": "expw", "path": "expw"}
    )
    assert [(r["id"], r["source_label"]) for r in rows] == [
        ("expw/angry_actor_104.jpg#0", "0"),
        ("expw/happy_family_9.jpg#0", "6"),
        ("expw/happy_family_9.jpg#1", "3"),
    ]
    assert [label_map[r["source_label"]] for r in rows] == ["angry", "neutral", "happy"]
    family = rows[2]
    assert family["source_box"] == {"x": 30.0, "y": 40.0, "w": 90.0, "h": 90.0}
    assert abs(family["source_score"] - 88.5) < 1e-4
    assert rows[1]["image"]["bytes"] == rows[2]["image"]["bytes"]  # one photo, two faces
    assert reasons == ["bad_face_box", "bad_label", "bad_line", "missing_file"]
    assert summary["total"] == len(lines) == summary["kept"] + summary["rejected"]


def _ckplus(root: Path, sequences: dict[str, tuple[int, str | None]]) -> None:
    """sequences: 'S005/001' -> (frames, emotion file text or None)."""
    seed = 0
    for sequence, (count, emotion) in sequences.items():
        subject, number = sequence.split("/")
        folder = root / "cohn-kanade-images" / subject / number
        folder.mkdir(parents=True)
        for frame in range(1, count + 1):
            seed += 1
            name = f"{subject}_{number}_{frame:08d}.png"
            Image.fromarray(face_like(64, seed)).save(folder / name)
        if emotion is not None:
            labels = root / "Emotion" / subject / number
            labels.mkdir(parents=True, exist_ok=True)
            name = f"{subject}_{number}_{count:08d}_emotion.txt"
            (labels / name).write_text(emotion)


def test_ckplus_protocol_frames_labels_and_subjects(tmp_path):
    _ckplus(
        tmp_path / "ck",
        {
            "S005/001": (5, "   3.0000000e+00\n"),  # disgust
            "S010/002": (4, "   2.0000000e+00\n"),  # contempt: dropped by the preset
            "S010/004": (3, None),  # unlabelled: not part of the protocol
            "S011/001": (4, "oops"),
        },
    )
    (tmp_path / "ck" / "Emotion" / "S012" / "003").mkdir(parents=True)
    (tmp_path / "ck" / "Emotion" / "S012" / "003" / "S012_003_00000009_emotion.txt").write_text(
        "5.0"
    )  # labels a sequence whose frames are missing
    spec = {"format": "ckplus", "path": "ck", "last_frames": 2, "first_as_neutral": True}
    summary, rows, reasons, label_map = _ingest(tmp_path, "ck", spec)
    got = [(r["id"], r["source_label"], r["subject"]) for r in rows]
    assert got == [
        ("ck/S005_001_00000001.png", "0", "S005"),
        ("ck/S005_001_00000004.png", "3", "S005"),
        ("ck/S005_001_00000005.png", "3", "S005"),
        ("ck/S010_002_00000001.png", "0", "S010"),
        ("ck/S010_002_00000003.png", "2", "S010"),
        ("ck/S010_002_00000004.png", "2", "S010"),
    ]
    assert [label_map.get(r["source_label"]) for r in rows] == [
        "neutral",
        "disgust",
        "disgust",
        "neutral",
        None,
        None,
    ]
    assert reasons == ["bad_label", "missing_file"]
    assert summary["kept"] == 6 and summary["rejected"] == 2


def test_ferplus_folders_majority_votes_splits_and_rejects(tmp_path):
    root = tmp_path / "ferplus"
    layout = {
        "FER2013Train": [
            'fer0000000.png,"(0, 0, 48, 48)",4,0,0,1,3,2,0,0,0,0',  # neutral 4 of 10: no majority
            'fer0000001.png,"(0, 0, 48, 48)",0,9,0,0,0,0,0,0,1,0',  # happiness
            'fer0000002.png,"(0, 0, 48, 48)",0,0,0,0,0,0,0,0,2,8',  # NF
            'fer0000003.png,"(0, 0, 48, 48)",0,0,10,0,0,0,0,0,0,0',  # surprise, file missing
            "garbage line",
        ],
        "FER2013Valid": ['fer0028709.png,"(0, 0, 48, 48)",0,0,0,8,0,0,2,0,0,0'],  # sadness
        "FER2013Test": ['fer0032220.png,"(0, 0, 48, 48)",1,0,0,0,0,0,0,9,0,0'],  # contempt
    }
    seed = 0
    for folder, lines in layout.items():
        (root / folder).mkdir(parents=True)
        (root / folder / "label.csv").write_text("\n".join(lines) + "\n")
        for line in lines:
            name = line.split(",")[0]
            if name.endswith(".png") and name != "fer0000003.png":
                seed += 1
                Image.fromarray(face_like(48, seed)).save(root / folder / name)
    spec = {"format": "ferplus_folders", "path": "ferplus"}
    summary, rows, reasons, label_map = _ingest(tmp_path, "fp", spec)
    got = [(r["id"], r["source_label"], r["source_split"]) for r in rows]
    assert got == [
        ("fp/FER2013Test/fer0032220.png", "contempt", "PrivateTest"),
        ("fp/FER2013Train/fer0000001.png", "happiness", "Training"),
        ("fp/FER2013Valid/fer0028709.png", "sadness", "PublicTest"),
    ]
    assert [label_map.get(r["source_label"]) for r in rows] == [None, "happy", "sad"]
    assert rows[1]["label_votes"] == [0, 9, 0, 0, 0, 0, 0, 0, 1, 0]
    assert reasons == ["bad_line", "ferplus_nf", "ferplus_no_majority", "missing_file"]
    assert summary["total"] == 7 == summary["kept"] + summary["rejected"]
