"""Duplicates (the same photograph) versus related faces (another photograph of the same face)."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fer.config import SplitParams, parse_params
from fer.dataset import read_summary, read_table
from fer.dedup import related_groups, verify
from fer.dedup.verify import pair_similarity, similarities, verification_view
from fer.split import assign_splits, split_dataset, split_groups
from tests.conftest import encode, face_like, run_to_dedup


def _run(root: Path, sources: dict, crop_enabled: bool = False) -> Path:
    raw = {
        "sources": sources,
        "crop": {"defaults": {"enabled": crop_enabled}},
        "storage": {"shard_megabytes": 1},
    }
    return run_to_dedup(parse_params(raw, root=root), root)


def _png(pixels: np.ndarray) -> bytes:
    return encode(Image.fromarray(pixels), "PNG")


def _dedup_two_folders(root: Path, files: dict[str, bytes]) -> tuple[pd.DataFrame, dict]:
    """Write `files` (paths under raw/, first part the source a or b), dedup; rows by id and
    the summary."""
    for name, data in files.items():
        (root / "raw" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "raw" / name).write_bytes(data)
    sources = {name: {"format": "image_folder", "path": f"raw/{name}"} for name in ("a", "b")}
    out = _run(root, sources)
    return read_table(out).to_pandas().set_index("id"), read_summary(out)


def _asymmetric_face(seed: int) -> np.ndarray:
    face = face_like(64, seed).astype(np.int16)
    face[40:50, 10:30] -= 70  # a lopsided mouth: the mirror is another picture
    return np.clip(face, 0, 255).astype(np.uint8)


def test_a_face_and_its_mirror_are_mirror_duplicates(tmp_path):
    face = _asymmetric_face(1)
    rows, summary = _dedup_two_folders(
        tmp_path,
        {
            "a/happy/face.png": _png(face),
            "b/happy/mirrored.png": _png(np.ascontiguousarray(face[:, ::-1])),
            "a/sad/other.png": _png(np.ascontiguousarray(np.rot90(_asymmetric_face(7)))),
        },
    )
    assert (
        rows.loc["a/happy/face.png", "dup_group"] == rows.loc["b/happy/mirrored.png", "dup_group"]
    )
    assert rows.loc["a/happy/face.png", "dup_kind"] == "mirror"
    assert rows.loc["a/sad/other.png", "dup_group_size"] == 1
    assert summary["mirror_pairs"] == 1


# Real FER2013 faces whose 10 % re-crops (x, y, side; mirrored or not) the whole-frame hash
# and five 94 % sub-windows both missed (`benchmarks/dedup_pairs.py`).
_MISSED_RECROPS = {
    "test/happy/PublicTest_84654969.jpg": (2, 5, 43, False),
    "test/fear/PrivateTest_67336666.jpg": (5, 5, 43, False),
    "test/neutral/PublicTest_69405051.jpg": (2, 4, 44, True),
    "test/disgust/PrivateTest_46114477.jpg": (0, 4, 43, True),
    "test/sad/PublicTest_61865676.jpg": (4, 4, 44, True),
}


@pytest.mark.realdata
def test_real_fer2013_recrops_and_mirrored_recrops_are_duplicates(shared_data, tmp_path):
    files = {}
    with tarfile.open(shared_data / "fer2013" / "fer2013_images.tar.gz") as tar:
        for k, (member, (x, y, side, mirror)) in enumerate(_MISSED_RECROPS.items()):
            data = tar.extractfile(member).read()
            label = member.split("/")[1]
            crop = Image.open(io.BytesIO(data)).convert("L").crop((x, y, x + side, y + side))
            if mirror:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            files[f"a/{label}/{k}.png"] = data
            files[f"b/{label}/{k}.png"] = encode(crop, "PNG")
    rows, _ = _dedup_two_folders(tmp_path, files)
    for k, (member, (*_, mirror)) in enumerate(_MISSED_RECROPS.items()):
        label = member.split("/")[1]
        original, copy = rows.loc[f"a/{label}/{k}.png"], rows.loc[f"b/{label}/{k}.png"]
        assert original["dup_group"] == copy["dup_group"], member
        assert original["dup_group_size"] == 2
        assert original["dup_kind"] == ("mirror" if mirror else "near")


def test_the_verifier_tells_a_copy_from_another_expression():
    face = _asymmetric_face(3)
    smiling = face.astype(np.int16)
    smiling[40:50, 10:54] += 90  # the mouth changes, everything else is the same photo
    smiling = np.clip(smiling, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(face).resize((48, 48)).save(buffer, "JPEG", quality=40)
    views = [verification_view(_png(face)), verification_view(buffer.getvalue())]
    views.append(verification_view(_png(smiling)))
    scores = pair_similarity(
        np.stack([views[0], views[0]]), np.stack([views[1], views[2]]), np.zeros(2, bool)
    )
    assert scores[0] >= 0.95 > scores[1]


def _view_set() -> np.ndarray:
    """Verification views of faces, their copies (JPEG, resized, shifted, mirrored) and other
    faces: pairs of every kind, from far apart to near-identical."""
    views = []
    for seed in range(4):
        face = _asymmetric_face(seed)
        image = Image.fromarray(face)
        buffer = io.BytesIO()
        image.resize((52, 52)).save(buffer, "JPEG", quality=50)
        views.append(verification_view(_png(face)))
        views.append(verification_view(buffer.getvalue()))
        views.append(verification_view(_png(np.ascontiguousarray(face[3:, 2:]))))
        views.append(verification_view(_png(np.ascontiguousarray(face[:, ::-1]))))
    return np.stack(views)


def _all_pairs(count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    first, second = np.triu_indices(count, 1)
    first, second = np.repeat(first, 2), np.repeat(second, 2)
    return first, second, np.tile([False, True], len(first) // 2)


def test_scores_do_not_depend_on_how_pairs_are_batched():
    views = _view_set()
    first, second, mirror = _all_pairs(len(views))
    together = similarities(views, first, second, mirror, (0.9, 0.95))
    one_by_one = np.concatenate(
        [
            pair_similarity(views[[i]], views[[j]], np.array([m]), (0.9, 0.95))
            for i, j, m in zip(first, second, mirror, strict=True)
        ]
    )
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    for threshold in (0.8, 0.9, 0.95):
        assert ((together >= threshold) == (one_by_one >= threshold)).all()
    # Face 0 against its JPEG and its shifted copy (direct), and its mirror (mirrored only).
    by_pair = together.reshape(-1, 2)
    assert (by_pair[:2, 0] >= 0.95).all()
    assert by_pair[2, 1] >= 0.95 > by_pair[2, 0]


def test_a_score_near_a_threshold_is_the_float64_score():
    views = _view_set()
    first, second, mirror = _all_pairs(len(views))
    fast = similarities(views, first, second, mirror)
    exact, _ = verify._best(views, first, second, mirror, np.float64, ())
    assert 0 < np.abs(fast - exact).max() < 1e-5  # float32 rounding, far below the margin
    # Each score, taken as a threshold, is then decided on its float64 value.
    for k in (0, 5, len(fast) - 1):
        rechecked = similarities(views, first, second, mirror, (float(fast[k]),))
        # float64 up to the last bits: BLAS blocks a product of another shape differently.
        assert abs(rechecked[k] - exact[k]) < 1e-12 < abs(fast[k] - exact[k]) or fast[k] == exact[k]


def test_resize_matrix_matches_torch_interpolate():
    import torch
    import torch.nn.functional as F

    identity = torch.eye(verify.VIEW_SIDE)[None, None]
    for scale in verify.SCALES:
        side = round(verify.VIEW_SIDE * scale)
        expected = F.interpolate(
            identity,
            size=(side, verify.VIEW_SIDE),
            mode="bilinear",
            align_corners=False,
            antialias=side < verify.VIEW_SIDE,
        )[0, 0].numpy()
        np.testing.assert_allclose(verify.resize_matrix(side), expected, atol=3e-6)
        np.testing.assert_allclose(verify.resize_matrix(side).sum(axis=1), 1.0)


def test_the_dedup_stage_does_not_import_torch():
    # Importing torch costs the stage process 1.5-2.5 s, a sixth of the FER2013 dedup stage.
    code = "import sys, fer.dedup, fer.dedup.verify; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.fixture(scope="module")
def ckplus(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Real CK+48 (981 posed faces, 123 subjects) through ingest, crop, dedup and split."""
    root = tmp_path_factory.mktemp("ckplus")
    with tarfile.open(shared_data / "ckplus48.tar.gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                label, name = member.name.split("/")[-2:]
                target = root / "raw" / label / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    source = {"format": "image_folder", "path": "raw", "filename_pattern": "ckplus48"}
    out = _run(root, {"ck": source}, crop_enabled=True)
    split_dataset(out, SplitParams(), root / "processed", progress=False)
    return {
        "dedup": read_table(out).to_pandas().set_index("id"),
        "summary": read_summary(out),
        "processed": read_table(root / "processed").to_pandas(),
    }


@pytest.mark.realdata
def test_ckplus_frames_of_two_expressions_of_one_subject_are_related(ckplus):
    rows = ckplus["dedup"]
    happy, surprise = "ck/happy/S010_006_00000015.png", "ck/surprise/S010_002_00000014.png"
    assert rows.loc[happy, "subject"] == rows.loc[surprise, "subject"] == "S010"
    assert rows.loc[happy, "dup_group"] != rows.loc[surprise, "dup_group"]
    frames = [f"ck/happy/S010_006_000000{n}.png" for n in (13, 14, 15)]
    assert rows.loc[frames, "related_group"].nunique() == 1  # one face, three photos: related
    assert rows.loc[frames, "dup_group"].nunique() == 3  # ... and none a duplicate


@pytest.mark.realdata
def test_ckplus_keeps_its_photos_and_never_splits_a_subject(ckplus):
    rows, processed = ckplus["dedup"], ckplus["processed"]
    mapped = rows[rows["label"].notna()]
    assert mapped["dedup_keep"].mean() >= 0.95
    assert (rows.groupby("dup_group")["label"].nunique() == 1).all()  # no group mixes expressions
    assert (processed.groupby("subject")["split"].nunique() == 1).all()
    sequence = processed["id"].str.extract(r"(S\d+_\d+)_")[0]
    assert (processed.groupby(sequence)["split"].nunique() == 1).all()
    subjects = rows.index.str.extract(r"/(S\d+)_")[0].nunique()
    assert ckplus["summary"]["subjects"] == subjects > 100


@st.composite
def _frames(draw):
    n = draw(st.integers(2, 40))
    labels = draw(st.lists(st.sampled_from(["happy", "sad", "fear"]), min_size=n, max_size=n))
    subjects = draw(st.lists(st.sampled_from([None, "S1", "S2", "S3"]), min_size=n, max_size=n))
    pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=2 * n))
    return n, labels, subjects, [(min(p), max(p)) for p in pairs if p[0] != p[1]]


@settings(max_examples=60, deadline=None)
@given(_frames(), st.integers(0, 5), st.booleans())
def test_no_related_group_or_subject_straddles_splits(frames, seed, by_subject):
    n, labels, subjects, pairs = frames
    ids = pd.Series([f"s/{i:03d}" for i in range(n)])
    related = related_groups(ids, np.array(pairs, np.int64).reshape(-1, 2))
    rows = pd.DataFrame({"id": ids, "label": labels, "source": "s", "subject": subjects, **related})
    rows["split_group"] = split_groups(rows, by_subject)
    rows["split"] = assign_splits(rows, {"train": 0.8, "val": 0.1, "test": 0.1}, seed)
    assert (rows.groupby("related_group")["split"].nunique() == 1).all()
    if by_subject:
        known = rows[rows["subject"].notna()]
        assert (known.groupby("subject")["split"].nunique() == 1).all()


def test_a_duplicate_group_with_two_labels_never_goes_on_unflagged(sample_pipeline):
    rows = read_table(sample_pipeline / "dedup").to_pandas()
    mixed = rows.groupby("dup_group")["label"].transform("nunique") > 1
    assert mixed.any()
    assert rows.loc[mixed, "label_conflict"].all()
    going_on = rows[mixed & rows["dedup_keep"]]
    assert (going_on.groupby("dup_group")["label"].nunique() == 1).all()
