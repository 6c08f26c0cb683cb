"""`fer-data audit`: planted cross-split copies are found; a clean split is clean."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from typer.testing import CliRunner

from fer.audit import audit_paths
from fer.cli import app
from fer.errors import FerDataError


@pytest.fixture(scope="module")
def lfw() -> np.ndarray:
    return (skdata.lfw_subset()[:40] * 255).round().astype(np.uint8)


def _split_folder(root: Path, lfw: np.ndarray, planted: int) -> Path:
    """train/ holds 30 faces, test/ 10 others plus `planted` altered copies of train faces
    (re-encoded smaller, brightened, one mirrored)."""
    for k, face in enumerate(lfw):
        split = "train" if k < 30 else "test"
        label = ("happy", "sad", "angry")[k % 3]
        folder = root / split / label
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(face).resize((64, 64), Image.Resampling.BICUBIC).save(folder / f"f{k}.png")
    for k in range(planted):
        copy = Image.fromarray(lfw[k]).resize((56, 56), Image.Resampling.BICUBIC)
        copy = Image.fromarray(np.clip(np.asarray(copy, int) + 12, 0, 255).astype(np.uint8))
        if k == 0:
            copy = copy.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        folder = root / "test" / ("happy", "sad", "angry")[k % 3]
        copy.save(folder / f"copy{k}.jpg", quality=90)
    return root


def test_audit_finds_planted_cross_split_copies(tmp_path, lfw):
    root = _split_folder(tmp_path / "data", lfw, planted=4)
    report = audit_paths([root], gallery=tmp_path / "leaks.png", progress=False)
    assert report["images"] == 44
    assert report["images_per_split"] == {"test": 14, "train": 30}
    assert report["cross_split_groups"] == 4 and report["cross_split_images"] == 8
    assert report["cross_split_pairs"] == {"test / train": 4}
    assert report["mirror_cross_split_groups"] == 1
    assert report["label_conflicts"] == 0 and report["gallery_groups"] == 4
    with Image.open(tmp_path / "leaks.png") as picture:
        assert picture.format == "PNG"


def test_split_folders_given_one_by_one_are_the_same_audit(tmp_path, lfw):
    root = _split_folder(tmp_path / "data", lfw, planted=2)
    report = audit_paths([root / "train", root / "test"], progress=False)
    assert report["images_per_split"] == {"test": 12, "train": 30}
    assert report["cross_split_groups"] == 2


def test_cli_json_and_fail_on_leak(tmp_path, lfw):
    runner = CliRunner()
    leaky = _split_folder(tmp_path / "leaky", lfw, planted=1)
    result = runner.invoke(app, ["audit", str(leaky), "--json", "--fail-on-leak"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert {"images", "cross_split_groups", "cross_split_images", "label_conflicts"} <= set(report)
    clean = _split_folder(tmp_path / "clean", lfw, planted=0)
    result = runner.invoke(app, ["audit", str(clean), "--json", "--fail-on-leak"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["cross_split_groups"] == 0


def test_a_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(FerDataError, match="not found"):
        audit_paths([tmp_path / "nothing"], progress=False)


def test_a_processed_output_is_audited_by_its_split_column(sample_pipeline):
    report = audit_paths([sample_pipeline / "processed"], progress=False)
    assert set(report["images_per_split"]) == {"train", "val", "test"}
    # The pipeline's own split keeps duplicate and related groups together.
    assert report["cross_split_groups"] == 0


def test_faces_counts_the_images_without_a_face(tmp_path, lfw):
    root = _split_folder(tmp_path / "data", lfw[:6], planted=0)
    blank = root / "test" / "happy" / "blank.png"
    blank.parent.mkdir(parents=True)
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(blank)
    report = audit_paths([root], faces=True, progress=False)
    assert report["images"] == 7
    assert report["images_without_face"] >= 1  # the blank frame at least
