"""One minimal reproduction per defect that adversarial testing found (issue 10).

Each test fails on the code before the fix: a command that ran, a file read from outside the
source, a hang, a crash, a silently wrong row, or a half-written output.
"""

from __future__ import annotations

import csv
import io
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fer.config import IngestParams, SplitParams
from fer.dataset import DEDUP_SCHEMA, DatasetWriter, read_rejects, read_table, staging_dir
from fer.errors import FerDataError
from fer.formats.affectnet_csv import AFFECTNET_COLUMNS, AffectNetCsvSource
from fer.formats.fer2013_csv import Fer2013CsvSource
from fer.formats.image_folder import ImageFolderSource
from fer.images import load_image
from fer.ingest import ingest_source
from fer.split import split_dataset
from tests.conftest import REPO_ROOT, encode, face_like, pixels_text

PARAMS = IngestParams(workers=1)


def _jpeg(seed: int = 0, side: int = 64) -> bytes:
    return encode(Image.fromarray(np.stack([face_like(side, seed)] * 3, axis=-1)))


def _ingest(source, out: Path) -> tuple[dict, list[dict], list[dict]]:
    summary = ingest_source(source, PARAMS, out, progress=False)
    return summary, read_table(out).to_pylist(), read_rejects(out).to_pylist()


# 1. Code execution from a checkpoint ---------------------------------------------------------


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_checkpoint_is_refused_without_running(tmp_path):
    from fer.evaluate import evaluate_model

    marker = tmp_path / "pwned"
    checkpoint = tmp_path / "model.pt"
    torch.save({"model": "resnet18", "image_size": 64, "state_dict": _Payload(marker)}, checkpoint)
    with pytest.raises(FerDataError, match="refused without running it") as caught:
        evaluate_model(tmp_path / "processed", checkpoint, tmp_path / "eval")
    assert not marker.exists()
    assert "\n" not in str(caught.value)


def test_a_plain_pickle_is_refused_by_the_train_loader(tmp_path):
    from fer.train import read_checkpoint

    marker = tmp_path / "pwned"
    checkpoint = tmp_path / "evil.pt"
    checkpoint.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(FerDataError, match="refused"):
        read_checkpoint(checkpoint)
    assert not marker.exists()


# 2. Reads outside the source -----------------------------------------------------------------


def test_file_links_out_of_an_image_folder_are_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "face.jpg").write_bytes(_jpeg(1))
    root = tmp_path / "src"
    (root / "happy").mkdir(parents=True)
    (root / "happy" / "ok.jpg").write_bytes(_jpeg(2))
    (root / "happy" / "passwd.jpg").symlink_to("/etc/passwd")
    (root / "happy" / "outside.jpg").symlink_to(outside / "face.jpg")
    (root / "happy" / "inside.jpg").symlink_to(root / "happy" / "ok.jpg")
    summary, rows, rejects = _ingest(ImageFolderSource("s", root), tmp_path / "out")
    assert [r["id"] for r in rows] == ["s/happy/inside.jpg", "s/happy/ok.jpg"]
    assert {r["locator"]: r["reason"] for r in rejects} == {
        "happy/outside.jpg": "path_escapes_root",
        "happy/passwd.jpg": "path_escapes_root",
    }
    assert all("root:" not in r["detail"] for r in rejects)  # nothing of /etc/passwd is shown
    assert summary["total"] == 4


def test_folder_links_are_counted_not_lost(tmp_path):
    outside = tmp_path / "elsewhere" / "sad"
    outside.mkdir(parents=True)
    (outside / "a.jpg").write_bytes(_jpeg(3))
    root = tmp_path / "src"
    (root / "happy").mkdir(parents=True)
    (root / "happy" / "a.jpg").write_bytes(_jpeg(4))
    (root / "sad").symlink_to(outside)
    (root / "joy").symlink_to(root / "happy")
    _summary, rows, rejects = _ingest(ImageFolderSource("s", root), tmp_path / "out")
    assert [r["id"] for r in rows] == ["s/happy/a.jpg"]
    assert {r["locator"]: r["reason"] for r in rejects} == {
        "joy": "linked_folder",
        "sad": "path_escapes_root",
    }


def _affectnet(root: Path, paths: list[str], box=("10", "12", "40", "40")) -> AffectNetCsvSource:
    (root / "images").mkdir(parents=True, exist_ok=True)
    with (root / "training.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*AFFECTNET_COLUMNS, "expression", "valence", "arousal"])
        for path in paths:
            writer.writerow([path, *box, "", "1", "0.1", "0.2"])
    return AffectNetCsvSource("an", root, images="images")


def test_affectnet_image_links_out_of_the_image_root_are_refused(tmp_path):
    root = tmp_path / "an"
    source = _affectnet(root, ["a/ok.jpg", "a/link.jpg"])
    (root / "images" / "a").mkdir(parents=True)
    (root / "images" / "a" / "ok.jpg").write_bytes(_jpeg(5))
    (tmp_path / "secret.jpg").write_bytes(_jpeg(6))
    (root / "images" / "a" / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    _, rows, rejects = _ingest(source, tmp_path / "out")
    assert [r["id"] for r in rows] == ["an/a/ok.jpg"]
    assert [r["reason"] for r in rejects] == ["path_escapes_root"]


# 3. Special files ----------------------------------------------------------------------------


def test_a_fifo_is_refused_before_it_is_opened(tmp_path):
    root = tmp_path / "src"
    (root / "happy").mkdir(parents=True)
    (root / "happy" / "a.jpg").write_bytes(_jpeg(7))
    os.mkfifo(root / "happy" / "x.jpg")
    # Run in a subprocess with a timeout: the old code blocked forever in open().
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from fer.config import IngestParams; from fer.ingest import ingest_source;"
        "from fer.formats.image_folder import ImageFolderSource;"
        "s = ingest_source(ImageFolderSource('s', Path(sys.argv[2])), IngestParams(workers=1),"
        " Path(sys.argv[3]), progress=False); print(s['rejected_by_reason'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(REPO_ROOT), str(root), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "{'not_a_regular_file': 1}" in result.stdout


# 4. File names that are not UTF-8 ------------------------------------------------------------


def test_a_name_that_is_not_utf8_is_kept_with_an_escaped_id(tmp_path):
    root = tmp_path / "src"
    (root / "happy").mkdir(parents=True)
    raw = os.fsencode(root / "happy") + b"/bad\xffname.png"
    with open(raw, "wb") as f:
        f.write(_jpeg(8))
    summary, rows, _ = _ingest(ImageFolderSource("s", root), tmp_path / "out")
    assert [r["id"] for r in rows] == ["s/happy/bad\\xffname.png"]
    assert rows[0]["notes"] == ["name_not_utf8"]
    assert summary["kept"] == 1


# 5. NUL bytes in an AffectNet path -----------------------------------------------------------


def test_a_nul_byte_in_an_affectnet_path_is_a_reject(tmp_path):
    source = _affectnet(tmp_path / "an", ["a/b\x00c.jpg"])
    _summary, rows, rejects = _ingest(source, tmp_path / "out")
    assert rows == [] and [r["reason"] for r in rejects] == ["bad_path"]


# 6-8, 14. FER2013 CSV ------------------------------------------------------------------------


def _fer_line(label: int = 3, pixels: str | None = None, usage: str = "Training") -> str:
    return f"{label},{pixels if pixels is not None else pixels_text(face_like())},{usage}"


def test_a_pixels_field_over_the_csv_limit_is_one_reject(tmp_path):
    csv_path = tmp_path / "fer.csv"
    huge = " ".join(["1"] * 70_000)  # 139,999 characters
    csv_path.write_text(
        "emotion,pixels,Usage\n"
        + "\n".join([_fer_line(), _fer_line(pixels=huge), _fer_line()])
        + "\n"
    )
    summary, rows, rejects = _ingest(Fer2013CsvSource("fer", csv_path), tmp_path / "out")
    assert summary["kept"] == 2 and [r["reason"] for r in rejects] == ["wrong_pixel_count"]
    assert [r["id"] for r in rows] == ["fer/000000", "fer/000002"]


def test_a_pixel_value_beyond_32_bits_does_not_wrap(tmp_path):
    pixels = "4294967296 " + pixels_text(face_like().ravel()[1:])
    csv_path = tmp_path / "fer.csv"
    csv_path.write_text("emotion,pixels,Usage\n" + _fer_line(pixels=pixels) + "\n")
    summary, _, rejects = _ingest(Fer2013CsvSource("fer", csv_path), tmp_path / "out")
    assert summary["kept"] == 0 and [r["reason"] for r in rejects] == ["pixel_out_of_range"]


def test_a_repeated_header_column_is_an_error(tmp_path):
    csv_path = tmp_path / "fer.csv"
    csv_path.write_text("emotion,pixels,Usage,emotion\n" + _fer_line() + ",4\n")
    with pytest.raises(FerDataError, match="header names emotion more than once"):
        _ingest(Fer2013CsvSource("fer", csv_path), tmp_path / "out")


def test_a_byte_order_mark_is_accepted(tmp_path):
    csv_path = tmp_path / "fer.csv"
    csv_path.write_bytes(b"\xef\xbb\xbf" + ("emotion,pixels,Usage\n" + _fer_line() + "\n").encode())
    summary, _, _ = _ingest(Fer2013CsvSource("fer", csv_path), tmp_path / "out")
    assert summary["kept"] == 1


# 9. AffectNet face boxes outside the image ---------------------------------------------------


def test_a_face_box_wholly_outside_is_refused_and_one_partly_outside_is_clipped(tmp_path):
    outside = _affectnet(tmp_path / "a", ["x/a.jpg"], box=("500", "500", "40", "40"))
    (tmp_path / "a" / "images" / "x").mkdir(parents=True)
    (tmp_path / "a" / "images" / "x" / "a.jpg").write_bytes(_jpeg(9))
    _, rows, rejects = _ingest(outside, tmp_path / "o1")
    assert rows == [] and [r["reason"] for r in rejects] == ["bad_face_box"]

    partly = _affectnet(tmp_path / "b", ["x/a.jpg"], box=("40", "-8", "40", "40"))
    (tmp_path / "b" / "images" / "x").mkdir(parents=True)
    (tmp_path / "b" / "images" / "x" / "a.jpg").write_bytes(_jpeg(9))
    _, rows, _ = _ingest(partly, tmp_path / "o2")
    assert rows[0]["source_box"] == {"x": 40.0, "y": 0.0, "w": 24.0, "h": 32.0}
    assert "face_box_clipped" in rows[0]["notes"]


# 11. Export ----------------------------------------------------------------------------------


def _processed(tmp_path: Path, ids: list[str]) -> Path:
    out = tmp_path / "processed"
    base = {name: None for name in DEDUP_SCHEMA.names}
    from fer.dataset import SPLIT_SCHEMA

    with DatasetWriter(out, SPLIT_SCHEMA, 2**20, {"stage": "split"}) as writer:
        for row_id in sorted(ids):
            writer.add(
                {
                    **base,
                    "id": row_id,
                    "source": row_id.split("/")[0],
                    "source_label": "happy",
                    "image": {"bytes": _jpeg(len(row_id)), "path": None},
                    "width": 64,
                    "height": 64,
                    "channels": 3,
                    "notes": [],
                    "pixel_hash": "x",
                    "original_width": 64,
                    "original_height": 64,
                    "crop_status": "ok",
                    "crop_faces": 1,
                    "label": "happy",
                    "label_index": 3,
                    "frame_hash": "0",
                    "face_hash": "0",
                    "dup_group": row_id,
                    "dup_group_size": 1,
                    "dup_kind": "single",
                    "dup_keeper": True,
                    "label_conflict": False,
                    "dedup_keep": True,
                    "dedup_reason": "",
                    "related_group": row_id,
                    "related_group_size": 1,
                    "split_group": row_id,
                    "split": "train",
                },
                row_id,
            )
        writer.close()
    return out


def test_export_never_merges_two_rows_into_one_file(tmp_path):
    from fer.export import export_dataset

    long_id = "s/happy/" + "x" * 300 + ".jpg"
    ids = ["s/happy/collide.jpg", "s/happy/collide.JPG", "s/v1.2/a.jpg", "s/v1.3/a.jpg", long_id]
    processed = _processed(tmp_path, ids)
    counts = export_dataset(processed, tmp_path / "out", "imagefolder")
    files = sorted(p.name for p in (tmp_path / "out" / "train" / "happy").iterdir())
    assert counts["train"] == len(ids) == len(files)
    assert len({f.lower() for f in files}) == len(files)  # also on case-insensitive disks
    assert "s__v1.2__a.jpg" in files and "s__v1.3__a.jpg" in files
    assert all(len(f.encode()) <= 255 for f in files)


def test_export_onto_an_existing_file_is_one_line(tmp_path):
    from fer.export import export_dataset

    processed = _processed(tmp_path, ["s/a.jpg"])
    target = tmp_path / "target"
    target.write_text("precious")
    with pytest.raises(FerDataError, match="exists and is a file"):
        export_dataset(processed, target, "imagefolder")
    assert target.read_text() == "precious"
    assert not staging_dir(target).exists()


# 12. Split of an empty balance output --------------------------------------------------------


def test_split_of_nothing_names_the_source_and_the_reasons(tmp_path):
    balance = tmp_path / "balance"
    with DatasetWriter(balance, DEDUP_SCHEMA, 2**20, {"stage": "balance"}) as writer:
        for i in range(3):
            writer.reject("fer2013", f"fer2013/{i}", f"fer2013/{i}", "crop_no_face", "d")
        writer.reject("fer2013", "fer2013/9", "fer2013/9", "duplicate", "d")
        writer.close()
    with pytest.raises(
        FerDataError, match=r"fer2013 lost all 4 rows \(3 crop_no_face, 1 duplicate\)"
    ):
        split_dataset(balance, SplitParams(), tmp_path / "processed", progress=False)


# 13. Staging never sits where DVC hashes it --------------------------------------------------


def test_staging_is_hidden_and_stale_staging_is_removed(tmp_path):
    out = tmp_path / "crop" / "fer2013"
    stale = staging_dir(out)
    stale.mkdir(parents=True)
    (stale / "contact_sheet.png").write_bytes(b"left by a killed run")
    assert stale.name.startswith(".") and stale.name.endswith(".partial")
    with DatasetWriter(out, DEDUP_SCHEMA, 2**20, {"stage": "x"}) as writer:
        assert not (writer.staging_dir / "contact_sheet.png").exists()
        writer.close()
    assert not stale.exists() and sorted(p.name for p in out.parent.iterdir()) == ["fer2013"]


def test_dvc_ignores_a_killed_stage_staging_folder(tmp_path):
    from dvc.repo import Repo

    shutil.copy(REPO_ROOT / ".dvcignore", tmp_path / ".dvcignore")
    Repo.init(str(tmp_path), no_scm=True)
    crop = tmp_path / "data" / "crop"
    (crop / "fer2013").mkdir(parents=True)
    (crop / "fer2013" / "part-00000.parquet").write_bytes(b"x")
    repo = Repo(str(tmp_path))
    stale = staging_dir(crop / "fer2013")
    stale.mkdir()
    (stale / "contact_sheet.png").write_bytes(b"y")
    assert repo.dvcignore.is_ignored(repo.fs, str(stale))
    assert not repo.dvcignore.is_ignored(repo.fs, str(crop / "fer2013"))


# 14. Image formats -----------------------------------------------------------------------------


def test_eps_without_ghostscript_is_unsupported_not_corrupt():
    if shutil.which("gs"):
        pytest.skip("Ghostscript is installed: EPS renders")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke\n"
    assert load_image(eps, 10**7).reason == "unsupported_format"


def test_a_float_tiff_of_nan_is_refused():
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), np.nan, np.float32), mode="F").save(buffer, format="TIFF")
    assert load_image(buffer.getvalue(), 10**7).reason == "non_finite_pixels"
