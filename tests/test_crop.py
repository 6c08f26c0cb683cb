from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from fer.config import CropRuntime, CropSettings
from fer.crop import CONTACT_SHEET, crop_source
from fer.crop.detector import FaceDetector, merged, nms_min
from fer.crop.geometry import CropWindow, crop_window, cut_crop, select_face
from fer.dataset import INGEST_SCHEMA, DatasetWriter, read_rejects, read_table
from fer.formats.common import image_row
from fer.images import StoredImage, encode_png, pixel_hash

RUNTIME = CropRuntime(device="cpu", batch_size=64)
ASTRONAUT_FACE = (180, 60, 270, 175)  # x1, y1, x2, y2 of the face in skimage's astronaut()


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def lfw() -> np.ndarray:
    return (skdata.lfw_subset() * 255).round().astype(np.uint8)


def _resize(pixels: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).resize((side, side), Image.Resampling.BICUBIC))


def _encoded(pixels: np.ndarray, image_format: str) -> bytes:
    if image_format == "PNG":
        return encode_png(pixels)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, image_format, quality=95)
    return buffer.getvalue()


def make_dataset(
    folder: Path, images: dict[str, np.ndarray], image_format: str = "PNG", **extra_columns
) -> Path:
    """An ingest-shaped dataset of PNG (or JPEG) rows, one per {name: pixels}."""
    with DatasetWriter(
        folder, INGEST_SCHEMA, 2**20, {"stage": "ingest", "source": "src"}
    ) as writer:
        for name in sorted(images):
            pixels = images[name]
            channels = 3 if pixels.ndim == 3 else 1
            stored = StoredImage(
                _encoded(pixels, image_format),
                pixels.shape[1],
                pixels.shape[0],
                channels,
                (),
                pixel_hash(pixels),
            )
            row = image_row(
                row_id=f"src/{name}",
                source="src",
                source_label=name.split("_")[0],
                source_split=None,
                image=stored,
                path=name,
                **extra_columns.get(name, {}),
            )
            writer.add(row, name)
        writer.close()
    return folder


def _decode(row: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])))


def _crop(tmp_path: Path, images: dict[str, np.ndarray], settings: CropSettings, **extra):
    src = make_dataset(tmp_path / "in", images, **extra)
    summary = crop_source(src, settings, RUNTIME, tmp_path / "out", progress=False)
    rows = {r["id"].split("/", 1)[1]: r for r in read_table(tmp_path / "out").to_pylist()}
    return summary, rows, read_rejects(tmp_path / "out").to_pylist()


def _eye_angle(detector: FaceDetector, pixels: np.ndarray) -> float:
    rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[:, :, None], 3, axis=2)
    found = detector.detect(rgb[None])
    assert len(found.scores), "no face in the crop"
    (lx, ly), (rx, ry) = found.landmarks[0][:2]
    return math.degrees(math.atan2(ry - ly, rx - lx))


def test_finds_the_astronaut(detector):
    found = detector.detect(skdata.astronaut()[None])
    assert len(found.scores) == 1 and found.scores[0] > 0.99
    x1, y1, x2, y2 = found.boxes[0]
    ex1, ey1, ex2, ey2 = ASTRONAUT_FACE
    assert abs(x1 - ex1) < 15 and abs(y1 - ey1) < 15 and abs(x2 - ex2) < 15 and abs(y2 - ey2) < 15
    left_eye, right_eye = found.landmarks[0][:2]
    assert left_eye[0] < right_eye[0] and abs(left_eye[1] - right_eye[1]) < 6


def test_lfw_faces_are_found_and_non_faces_are_not(tmp_path, lfw):
    images = {f"face_{i:03d}": _resize(lfw[i], 48) for i in range(100)}
    images |= {f"other_{i:03d}": _resize(lfw[100 + i], 48) for i in range(100)}
    summary, rows, _ = _crop(tmp_path, images, CropSettings(pad=0.17))
    faces_ok = sum(rows[f"face_{i:03d}"]["crop_status"] == "ok" for i in range(100))
    others_not = sum(rows[f"other_{i:03d}"]["crop_status"] != "ok" for i in range(100))
    assert faces_ok >= 95, summary["status_by_label"]
    assert others_not >= 95, summary["status_by_label"]
    assert summary["found_rate_by_label"]["face"] >= 0.95


def test_align_levels_the_eyes_of_a_rotated_face(tmp_path, detector):
    rotated = np.asarray(
        Image.fromarray(skdata.astronaut()).rotate(
            20, resample=Image.Resampling.BICUBIC, center=(225, 118)
        )
    )
    tilt = _eye_angle(detector, rotated)
    assert abs(tilt - _eye_angle(detector, skdata.astronaut())) > 15  # the 20 degrees show
    _, rows, _ = _crop(tmp_path, {"face_rot": rotated}, CropSettings(align=True, margin=0.3))
    row = rows["face_rot"]
    # Detected at reduced size (min_face_fraction), the eyes are located to about half a pixel.
    assert row["crop_status"] == "ok" and row["crop_angle"] == pytest.approx(tilt, abs=2)
    assert abs(_eye_angle(detector, _decode(row))) < 3


def test_without_align_the_crop_is_upright_and_square(tmp_path):
    _, rows, _ = _crop(
        tmp_path, {"face_a": skdata.astronaut()}, CropSettings(margin=0.2, output_size=112)
    )
    row = rows["face_a"]
    assert row["crop_angle"] == 0 and (row["width"], row["height"]) == (112, 112)
    assert (row["original_width"], row["original_height"]) == (512, 512)
    assert _decode(row).shape == (112, 112, 3)


def test_grayscale_stays_grayscale(tmp_path, lfw):
    _, rows, _ = _crop(tmp_path, {"face_g": _resize(lfw[3], 64)}, CropSettings(pad=0.17))
    assert rows["face_g"]["crop_status"] == "ok" and _decode(rows["face_g"]).ndim == 2
    assert rows["face_g"]["channels"] == 1


def test_running_twice_gives_identical_bytes(tmp_path, lfw):
    images = {f"face_{i}": _resize(lfw[i], 48) for i in range(20)} | {
        "other_0": _resize(lfw[150], 48)
    }
    src = make_dataset(tmp_path / "in", images)
    outputs = []
    for run in ("a", "b"):
        crop_source(
            src, CropSettings(pad=0.17, align=True), RUNTIME, tmp_path / run, progress=False
        )
        outputs.append({p.name: p.read_bytes() for p in sorted((tmp_path / run).iterdir())})
    assert outputs[0] == outputs[1]
    assert CONTACT_SHEET in outputs[0]


def test_bad_inputs_get_a_status_not_a_crash(tmp_path):
    huge = np.asarray(
        Image.fromarray(skdata.astronaut()).resize((2400, 2400), Image.Resampling.BILINEAR)
    )
    images = {
        "tiny_1": np.full((8, 8), 100, np.uint8),
        "blank_1": np.zeros((96, 96, 3), np.uint8),
        "huge_1": huge,
    }
    summary, rows, _ = _crop(tmp_path, images, CropSettings())
    assert rows["tiny_1"]["crop_status"] == "too_small"
    assert rows["blank_1"]["crop_status"] == "no_face"
    assert rows["huge_1"]["crop_status"] == "ok"
    box = rows["huge_1"]["crop_box"]
    factor = 2400 / 512  # detected on a downscaled copy, mapped back to full resolution
    assert abs(box["x"] / factor - ASTRONAUT_FACE[0]) < 15 and abs(box["w"] / factor - 90) < 20
    assert summary["total"] == summary["kept"] == 3


def test_no_face_policies(tmp_path):
    blank = np.full((96, 96, 3), 200, np.uint8)
    images = {"blank_keep": blank, "face_ok": skdata.astronaut()}
    box = {"source_box": {"x": 10.0, "y": 20.0, "w": 40.0, "h": 40.0}}

    summary, rows, rejects = _crop(tmp_path / "keep", images, CropSettings(no_face="keep"))
    assert rows["blank_keep"]["crop_status"] == "no_face"
    assert np.array_equal(_decode(rows["blank_keep"]), blank), "keep stores the original"

    summary, rows, rejects = _crop(tmp_path / "drop", images, CropSettings(no_face="drop"))
    assert set(rows) == {"face_ok"}
    assert [(r["id"], r["reason"]) for r in rejects] == [("src/blank_keep", "no_face")]
    assert summary["total"] == summary["kept"] + summary["rejected"] == 2

    _, rows, _ = _crop(
        tmp_path / "box", images, CropSettings(no_face="source_box", margin=0.0), blank_keep=box
    )
    assert rows["blank_keep"]["crop_status"] == "source_box"
    assert (rows["blank_keep"]["width"], rows["blank_keep"]["height"]) == (40, 40)


def test_disabled_crop_passes_images_through(tmp_path, lfw):
    pixels = _resize(lfw[0], 48)
    _, rows, _ = _crop(tmp_path, {"face_0": pixels}, CropSettings(enabled=False))
    assert rows["face_0"]["crop_status"] == "skipped"
    assert np.array_equal(_decode(rows["face_0"]), pixels)


def test_matches_facenet_reference_detector(detector, lfw):
    from facenet_pytorch import MTCNN

    images = np.stack([np.pad(_resize(face, 48), 8, constant_values=128) for face in lfw[:100]])
    rgb = np.repeat(images[..., None], 3, axis=3)
    reference_boxes, _ = MTCNN(keep_all=True).detect(rgb)
    mine = detector.detect(rgb)
    agree, ious = 0, []
    for i, ref in enumerate(reference_boxes):
        ours = mine.boxes[mine.image == i]
        agree += (ref is not None) == (len(ours) > 0)
        if ref is not None and len(ours):
            ious.append(_iou(ref[0], ours[0]))
    assert agree >= 97
    assert np.median(ious) > 0.9


@pytest.mark.parametrize("name", ["PNet", "RNet", "ONet"])
def test_networks_are_facenet_pytorchs_bit_for_bit(name):
    import torch
    from facenet_pytorch.models import mtcnn as reference

    from fer.crop import mtcnn

    side = {"PNet": 37, "RNet": 24, "ONet": 48}[name]
    batch = torch.rand(5, 3, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        ours = getattr(mtcnn, name)()(batch)
        theirs = getattr(reference, name)().eval()(batch)
    assert len(ours) == len(theirs)
    for mine, expected in zip(ours, theirs, strict=True):
        assert torch.equal(mine, expected)


def test_box_arithmetic_is_facenet_pytorchs_bit_for_bit():
    import torch
    from facenet_pytorch.models.utils import detect_face as reference

    from fer.crop.mtcnn import bbreg, generate_bounding_boxes, rerec

    generator = torch.Generator().manual_seed(1)
    reg = torch.rand(3, 4, 9, 11, generator=generator) - 0.5
    probs = torch.rand(3, 9, 11, generator=generator)
    ours = generate_bounding_boxes(reg, probs, 0.37, 0.6)
    theirs = reference.generateBoundingBox(reg, probs, 0.37, 0.6)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    boxes = ours[0][:, :5]
    offsets = torch.rand(len(boxes), 4, generator=generator) - 0.5
    assert torch.equal(bbreg(boxes.clone(), offsets), reference.bbreg(boxes.clone(), offsets))
    assert torch.equal(rerec(boxes.clone()), reference.rerec(boxes.clone()))


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled-library", "python-package"])
def test_box_operators_are_torchvisions(compiled, monkeypatch):
    import torch
    import torchvision.ops

    from fer.crop import mtcnn

    if not compiled:  # torchvision's library not found: its Python package does the work
        monkeypatch.setattr(mtcnn, "_vision_ops", lambda: False)
    generator = torch.Generator().manual_seed(2)
    corners = torch.rand(200, 2, generator=generator) * 80
    boxes = torch.cat([corners, corners + 5 + torch.rand(200, 2, generator=generator) * 40], 1)
    scores = torch.rand(200, generator=generator)
    assert torch.equal(mtcnn.nms(boxes, scores, 0.5), torchvision.ops.nms(boxes, scores, 0.5))
    image = torch.rand(2, 3, 64, 64, generator=generator)
    rois = torch.cat([torch.tensor([[0.0], [1.0], [1.0]]), boxes[:3] / 2], dim=1)
    expected = torchvision.ops.roi_align(image, rois, (24, 24), 1.0, -1, aligned=True)
    assert torch.equal(mtcnn.roi_align(image, rois, 24), expected)


def test_the_crop_detector_loads_neither_torchvision_nor_facenet_pytorch_code():
    """Their Python packages import TorchDynamo: 164 MB and over a second per process."""
    script = (
        "import sys, numpy as np\n"
        "from PIL import Image\n"
        "from skimage import data\n"
        "from fer.crop.detector import FaceDetector\n"
        "detector = FaceDetector()\n"
        "photo = Image.fromarray(data.astronaut())\n"
        "for side in (160, 64):\n"  # Pillow's path, then roi_align's
        "    found = detector.detect(np.asarray(photo.resize((side, side)))[None])\n"
        "    assert len(found.scores), side\n"
        "print(sorted(m for m in ('torchvision', 'facenet_pytorch', 'torch._dynamo')"
        " if m in sys.modules))\n"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _lfw_canvases(lfw: np.ndarray, count: int) -> np.ndarray:
    images = np.stack([np.pad(_resize(face, 48), 8, constant_values=128) for face in lfw[:count]])
    return np.repeat(images[..., None], 3, axis=3)


def _onet_inputs(detector: FaceDetector, images: np.ndarray, monkeypatch) -> int:
    seen = []
    original = detector.onet.forward
    monkeypatch.setattr(detector.onet, "forward", lambda x: seen.append(len(x)) or original(x))
    detector.detect(images)
    monkeypatch.undo()
    return sum(seen)


def test_merged_candidates_keep_every_confident_face_with_fewer_onet_calls(lfw, monkeypatch):
    images = _lfw_canvases(lfw, 100)
    mtcnn, merged = FaceDetector(merge_iou=None), FaceDetector(merge_iou=0.5, confident=0.9)
    reference, found = mtcnn.detect(images), merged.detect(images)
    confident = {int(i) for i in reference.image[reference.scores >= 0.9]}
    assert len(confident) > 60
    assert {int(i) for i in found.image[found.scores >= 0.9]} >= confident
    # The same face, boxed from another of its near-identical candidates.
    ious = [
        _iou(reference.boxes[reference.image == i][0], found.boxes[found.image == i][0])
        for i in confident
    ]
    assert np.median(ious) > 0.9 and min(ious) > 0.6
    unsure = sorted(set(range(len(images))) - {int(i) for i in found.image[found.scores >= 0.9]})
    for i in unsure:  # scored on all their candidates: MTCNN's detections
        np.testing.assert_array_equal(
            found.boxes[found.image == i], reference.boxes[reference.image == i]
        )
    assert _onet_inputs(merged, images, monkeypatch) < 0.6 * _onet_inputs(
        mtcnn, images, monkeypatch
    )


def test_with_no_confident_face_merging_gives_mtcnns_detections(lfw):
    images = _lfw_canvases(lfw, 40)
    reference = FaceDetector(merge_iou=None).detect(images)
    never_sure = FaceDetector(merge_iou=0.5, confident=1.01).detect(images)
    for name in ("image", "boxes", "scores", "landmarks"):
        np.testing.assert_array_equal(getattr(never_sure, name), getattr(reference, name))


def test_merged_boxes_are_score_weighted_means_of_their_cluster():
    import torch

    boxes = torch.tensor(
        [
            [0, 0, 10, 10, 0.75],
            [1, 0, 11, 10, 0.25],  # IoU 0.82 with the first: voted into it
            [40, 40, 50, 50, 0.5],  # far away: stays itself
            [1, 0, 11, 10, 0.9],  # another image: never mixed in
        ]
    )
    inds = torch.tensor([0, 0, 0, 1])
    voted, kept = merged(boxes, inds, 0.5)
    rows = {
        (int(i), round(float(b[4]), 2)): b[:4].tolist() for b, i in zip(voted, kept, strict=True)
    }
    assert rows == {
        (0, 0.75): [0.25, 0.0, 10.25, 10.0],
        (0, 0.5): [40.0, 40.0, 50.0, 50.0],
        (1, 0.9): [1.0, 0.0, 11.0, 10.0],
    }


def test_merged_box_moves_little_when_the_scores_swap_order():
    # Two near-equal candidates: the best-scored one switches with a 2e-4 change of the scores
    # (a jump of a whole pixel); their weighted mean moves by ~1e-4 px.
    import torch

    def voted(first: float) -> torch.Tensor:
        boxes = torch.tensor([[0, 0, 20, 20, first], [1, 1, 21, 21, 0.8]])
        return merged(boxes, torch.tensor([0, 0]), 0.5)[0][0, :4]

    assert (voted(0.8001) - voted(0.7999)).abs().max() < 1e-3


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_vectorised_min_nms_equals_reference():
    import torch
    from facenet_pytorch.models.utils.detect_face import batched_nms_numpy

    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(1, 60))
        xy = rng.uniform(0, 100, (n, 2))
        wh = rng.uniform(5, 60, (n, 2))
        boxes = torch.tensor(np.hstack([xy, xy + wh]), dtype=torch.float32)
        scores = torch.tensor(rng.permutation(n) / n + 0.01, dtype=torch.float32)
        inds = torch.tensor(rng.integers(0, 4, n))
        expected = set(batched_nms_numpy(boxes, scores, inds, 0.7, "Min").tolist())
        assert set(nms_min(boxes, scores, inds, 0.7).tolist()) == expected, trial


def test_cut_crop_known_answer():
    pixels = np.arange(100 * 80, dtype=np.uint32).reshape(80, 100) % 251
    pixels = pixels.astype(np.uint8)
    window = CropWindow(cx=50.0, cy=40.0, side=20.0, angle=0.0)
    np.testing.assert_array_equal(cut_crop(pixels, window, None, "edge"), pixels[30:50, 40:60])


def test_cut_crop_fills_outside_the_frame():
    pixels = np.full((20, 20), 200, np.uint8)
    window = CropWindow(cx=2.0, cy=10.0, side=12.0, angle=0.0)
    assert (cut_crop(pixels, window, None, "black")[:, :2] == 0).all()
    assert (cut_crop(pixels, window, None, "edge") == 200).all()


def test_select_face_rules():
    boxes = np.array([[0, 0, 10, 10], [40, 40, 80, 80], [45, 45, 55, 55]], dtype=np.float32)
    scores = np.array([0.99, 0.80, 0.95], dtype=np.float32)
    assert select_face(boxes, scores, 100, 100, "score") == 0
    assert select_face(boxes, scores, 100, 100, "largest") == 1
    assert select_face(boxes, scores, 100, 100, "largest_score") == 1
    assert select_face(boxes, scores, 100, 100, "center") == 2


@pytest.mark.parametrize("how", ["largest", "largest_score", "center"])
def test_select_face_prefers_faces_above_min_score(how):
    # The large box in the middle scores 0.80: below min_score it would make the image
    # low_score although a confident face is there.
    boxes = np.array([[0, 0, 10, 10], [30, 30, 70, 70]], dtype=np.float32)
    scores = np.array([0.95, 0.80], dtype=np.float32)
    assert select_face(boxes, scores, 100, 100, how) == 1
    assert select_face(boxes, scores, 100, 100, how, min_score=0.9) == 0
    assert select_face(boxes, scores, 100, 100, how, min_score=0.99) == 1  # none confident


def test_crop_window_margin_and_angle():
    window = crop_window(np.array([10, 20, 50, 80]), 0.25, np.array([[0, 0], [10, 10]]), align=True)
    assert (window.cx, window.cy, window.side) == (30.0, 50.0, 90.0)
    assert window.angle == pytest.approx(45.0)


# Windows that stay inside the frame (border: fit) and bytes that survive float noise ---------


def test_fit_moves_then_shrinks_the_window_inside_the_frame():
    from fer.crop.geometry import fit_window, synthesized_share

    near_edge = CropWindow(cx=5.0, cy=30.0, side=20.0, angle=0.0)
    fitted = fit_window(near_edge, 60, 40)
    assert (fitted.cx, fitted.cy, fitted.side) == (10.0, 30.0, 20.0)  # shifted, not shrunk
    assert synthesized_share(near_edge, 60, 40) == pytest.approx(0.25)
    assert synthesized_share(fitted, 60, 40) == 0.0
    too_big = fit_window(CropWindow(cx=24.0, cy=24.0, side=58.0, angle=0.0), 48, 48)
    assert (too_big.cx, too_big.cy, too_big.side) == (24.0, 24.0, 48.0)
    rotated = fit_window(CropWindow(cx=24.0, cy=24.0, side=40.0, angle=30.0), 48, 48)
    half = rotated.side / 2 * (math.cos(math.radians(30)) + math.sin(math.radians(30)))
    assert half == pytest.approx(24.0) and synthesized_share(rotated, 48, 48) == 0.0


def test_a_face_at_the_frame_edge_gets_a_window_inside_the_frame(tmp_path, lfw):
    face = _resize(lfw[3], 48)
    summary, rows, _ = _crop(tmp_path, {"face_0": face}, CropSettings(pad=0.17, margin=0.4))
    row = rows["face_0"]
    window = row["crop_window"]
    assert row["crop_status"] == "ok"
    assert window["cx"] - window["side"] / 2 >= -1e-3
    assert window["cx"] + window["side"] / 2 <= 48 + 1e-3
    assert window["cy"] - window["side"] / 2 >= -1e-3
    assert window["cy"] + window["side"] / 2 <= 48 + 1e-3
    assert row["crop_synthesized"] == 0.0 and summary["synthesized_pixel_share"] == 0.0
    assert row["crop_margin"] < 0.4  # the window was shrunk to fit; the margin it really got
    _, edge_rows, _ = _crop(
        tmp_path / "edge", {"face_0": face}, CropSettings(pad=0.17, margin=0.4, border="edge")
    )
    assert edge_rows["face_0"]["crop_synthesized"] > 0


def test_detector_noise_below_the_grid_gives_identical_bytes(tmp_path, lfw, monkeypatch):
    from fer.crop import detector as detector_module

    images = {f"face_{i}": _resize(lfw[i], 64) for i in range(8)}
    src = make_dataset(tmp_path / "in", images)
    crop_source(src, CropSettings(pad=0.17, align=True), RUNTIME, tmp_path / "a", progress=False)
    original = detector_module.FaceDetector.detect

    def noisy(self, batch, min_face_size=None):
        import dataclasses

        found = original(self, batch, min_face_size)
        rng = np.random.default_rng(0)

        def jitter(values, size):
            return values + rng.uniform(-size, size, values.shape).astype(values.dtype)

        return dataclasses.replace(
            found,
            boxes=jitter(found.boxes, 1e-4),
            landmarks=jitter(found.landmarks, 1e-4),
            scores=jitter(found.scores, 1e-6),
        )

    monkeypatch.setattr(detector_module.FaceDetector, "detect", noisy)
    crop_source(src, CropSettings(pad=0.17, align=True), RUNTIME, tmp_path / "b", progress=False)
    for name in ("part-00000.parquet", "summary.json", CONTACT_SHEET):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def _finds_nothing(self, batch, min_face_size=None):
    from fer.crop.detector import Detections

    return Detections(
        np.zeros(0, np.int64),
        np.zeros((0, 4), np.float32),
        np.zeros(0, np.float32),
        np.zeros((0, 5, 2), np.float32),
    )


def test_a_whole_frame_face_the_detector_misses_is_kept_as_frame_face(tmp_path, lfw, monkeypatch):
    from fer.crop import detector as detector_module

    monkeypatch.setattr(detector_module.FaceDetector, "detect", _finds_nothing)
    noise = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)
    images = {"face_0": _resize(lfw[5], 48), "other_0": noise}
    _, rows, _ = _crop(tmp_path, images, CropSettings(pad=0.17))
    assert rows["face_0"]["crop_status"] == "frame_face"
    assert rows["face_0"]["crop_score"] >= 0.7 and rows["face_0"]["crop_synthesized"] == 0.0
    assert rows["other_0"]["crop_status"] == "no_face"
    _, off, _ = _crop(tmp_path / "off", images, CropSettings(pad=0.17, frame_face_score=None))
    assert off["face_0"]["crop_status"] == "no_face"


def test_a_tilted_frame_face_is_kept_by_its_rotated_views(tmp_path, lfw, monkeypatch):
    # The O-net is not rotation-invariant: a face tilted by 40 degrees scores low upright and
    # high rotated back; noise stays a non-face at every angle.
    from fer.crop import detector as detector_module

    monkeypatch.setattr(detector_module.FaceDetector, "detect", _finds_nothing)
    tilted = Image.fromarray(_resize(lfw[17], 48)).rotate(
        40, resample=Image.Resampling.BILINEAR, fillcolor=128
    )
    noise = np.random.default_rng(1).integers(0, 255, (48, 48), dtype=np.uint8)
    images = {"tilted_0": np.asarray(tilted), "other_0": noise}
    _, upright, _ = _crop(tmp_path / "a", images, CropSettings(pad=0.17, frame_face_angles=[]))
    assert upright["tilted_0"]["crop_status"] == "no_face"
    _, rows, _ = _crop(tmp_path / "b", images, CropSettings(pad=0.17))
    assert rows["tilted_0"]["crop_status"] == "frame_face"
    assert rows["tilted_0"]["crop_score"] >= 0.9
    assert rows["other_0"]["crop_status"] == "no_face"


def _astronaut_photo(side: int) -> np.ndarray:
    return np.asarray(
        Image.fromarray(skdata.astronaut()).resize((side, side), Image.Resampling.BICUBIC)
    )


def test_draft_decode_finds_the_same_box_as_a_full_decode(tmp_path):
    # A 2048 px JPEG is decoded at 1/4 size (DCT scaling) for detection; the same pixels as a
    # PNG are decoded whole, then box-reduced to the same detection size.
    photo = _astronaut_photo(2048)
    boxes = {}
    for image_format in ("JPEG", "PNG"):
        src = make_dataset(tmp_path / image_format / "in", {"face_a": photo}, image_format)
        summary = crop_source(
            src, CropSettings(), RUNTIME, tmp_path / image_format / "out", progress=False
        )
        row = read_table(tmp_path / image_format / "out").to_pylist()[0]
        assert row["crop_status"] == "ok", summary
        boxes[image_format] = np.array([row["crop_box"][k] for k in "xywh"])
    detection_scale = 1 / 4  # the smallest face min_face_fraction allows is >= 48 px there
    assert np.abs(boxes["JPEG"] - boxes["PNG"]).max() * detection_scale <= 1.0, boxes
    x, y, w, h = boxes["JPEG"]
    ex1, ey1, ex2, ey2 = (4 * v for v in ASTRONAUT_FACE)
    assert (
        abs(x - ex1) < 60 and abs(y - ey1) < 60 and abs(x + w - ex2) < 60 and abs(y + h - ey2) < 60
    )


def test_batches_stay_within_the_pixel_budget(tmp_path):
    from fer.crop import _batch_plan, _detection_size
    from fer.dataset import RowReader

    images = {f"face_{i:02d}": _astronaut_photo(side) for i, side in enumerate([64, 300, 900] * 6)}
    src = make_dataset(tmp_path / "in", images)
    settings, runtime = CropSettings(min_face_fraction=None), CropRuntime(pixel_budget=1_000_000)
    reader = RowReader()
    batches = [
        reader.read(t["shard"], t["start"], t["stop"]).to_pylist()
        for t in _batch_plan(src, settings, runtime)
    ]
    assert sum(len(b) for b in batches) == len(images)
    for batch in batches:
        pixels = sum(
            w * h
            for w, h, _ in (
                _detection_size(r["width"], r["height"], settings, runtime) for r in batch
            )
        )
        assert len(batch) == 1 or pixels <= runtime.pixel_budget


_PEAK_RSS = """
import os, sys, threading, time
from fer.config import CropRuntime, CropSettings
from fer.crop import crop_source
from fer.crop.detector import FaceDetector

def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

FaceDetector()
start, peak, done = rss(), [0.0], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.005)
sampler = threading.Thread(target=sample)
sampler.start()
crop_source(sys.argv[1], CropSettings(output_size=224), CropRuntime(device="cpu"), sys.argv[2], 2**24, progress=False)
done.set()
sampler.join()
print(peak[0] - start)
"""


def test_crop_memory_does_not_grow_with_image_side(tmp_path):
    import subprocess
    import sys

    grown = {}
    for side in (400, 3200):
        photo = _astronaut_photo(side)
        src = make_dataset(
            tmp_path / f"in{side}", {f"face_{i:02d}": photo for i in range(16)}, "JPEG"
        )
        out = subprocess.run(
            [sys.executable, "-c", _PEAK_RSS, str(src), str(tmp_path / f"out{side}")],
            capture_output=True,
            text=True,
            check=True,
        )
        grown[side] = float(out.stdout.split()[-1])
    # 16 photos of 3200 px are 490 MB decoded (the previous crop stage grew by 670 MB more
    # than at 400 px); now each thread holds one decoded photo at a time (30 MB).
    assert grown[3200] - grown[400] < 200, grown


def test_detections_do_not_depend_on_the_number_of_cores(lfw):
    import torch

    faces = np.stack([np.stack([_resize(face, 64)] * 3, axis=-1) for face in lfw[:40]])
    photos = np.stack([np.roll(_astronaut_photo(640), 9 * k, axis=1) for k in range(3)])
    before = torch.get_num_threads()
    found = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            detector = FaceDetector()
            found[threads] = [detector.detect(faces), detector.detect(photos, 40.0)]
    finally:
        torch.set_num_threads(before)
    for one, two in zip(found[1], found[2], strict=True):
        assert len(one.boxes) > 0
        for field in ("image", "boxes", "scores", "landmarks"):
            assert np.array_equal(getattr(one, field), getattr(two, field)), field


def test_detection_size_is_the_largest_power_of_two_step_keeping_the_face_at_48_px():
    from fer.crop import _detection_size

    settings, runtime = CropSettings(), CropRuntime()  # min_face_fraction 0.15
    # (width, height) -> (detection width, height, smallest face there)
    assert _detection_size(2560, 1920, settings, runtime) == (640, 480, 72.0)  # 1/4
    assert _detection_size(1281, 961, settings, runtime) == pytest.approx(
        (641, 481, 72.13), abs=0.01
    )
    assert _detection_size(640, 480, settings, runtime) == (640, 480, 72.0)  # no step keeps 48
    assert _detection_size(48, 48, settings, runtime) == (48, 48, 20.0)  # never upscaled
    # Without the fraction the longer side is scaled to detect_max_side exactly.
    whole_frames = CropSettings(min_face_fraction=None)
    assert _detection_size(1280, 960, whole_frames, runtime) == (640, 480, 20.0)


def test_pillow_and_batch_detector_paths_agree(lfw, monkeypatch):
    # Photos above _PILLOW_FROM_PIXELS go through Pillow image by image on CPUs; forcing the
    # float-batch path (CUDA's, and small inputs') on the same photos finds the same faces.
    from fer.crop import detector as detector_module

    faces = [np.stack([_resize(face, 120)] * 3, axis=-1) for face in lfw[:24]]
    photos = np.stack([np.pad(face, ((40, 40), (60, 60), (0, 0)), mode="edge") for face in faces])
    assert photos.shape[1] * photos.shape[2] > detector_module._PILLOW_FROM_PIXELS
    detector = FaceDetector()
    pillow = detector.detect(photos, 40.0)
    monkeypatch.setattr(detector_module, "_PILLOW_FROM_PIXELS", 10**9)
    batch = detector.detect(photos, 40.0)
    found = {i: pillow.boxes[pillow.image == i][0] for i in set(pillow.image.tolist())}
    reference = {i: batch.boxes[batch.image == i][0] for i in set(batch.image.tolist())}
    assert len(found) >= 22 and abs(len(found) - len(reference)) <= 1
    ious = [_iou(found[i], reference[i]) for i in found.keys() & reference.keys()]
    assert np.median(ious) > 0.9 and min(ious) > 0.6


def test_upright_cut_at_a_subpixel_offset_reproduces_a_linear_ramp():
    # Bicubic resampling reproduces linear functions exactly: a window shifted by 0.25 px over
    # a ramp of 2 grey levels per column reads the ramp 0.5 levels further on.
    ramp = np.tile((np.arange(100) * 2).astype(np.uint8), (80, 1))
    window = CropWindow(cx=50.25, cy=40.0, side=20.0, angle=0.0)
    cut = cut_crop(ramp, window, None, "fit").astype(float)
    expected = 2 * (np.arange(40, 60) + 0.25)
    assert cut.shape == (20, 20)
    np.testing.assert_allclose(cut, np.tile(expected, (20, 1)), atol=0.51)


@pytest.mark.parametrize("border", ["edge", "black"])
def test_a_whole_pixel_cut_outside_the_frame_is_filled_as_border_says(border):
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    copied = cut_crop(pixels, CropWindow(cx=2.0, cy=27.0, side=12.0, angle=0.0), None, border)
    # The window spans x -4..8, y 21..33 of a 40 x 30 frame.
    assert copied.shape == (12, 12, 3)
    np.testing.assert_array_equal(copied[:9, 4:], pixels[21:30, 0:8])
    padded = np.pad(pixels, ((0, 3), (4, 0), (0, 0)), mode="edge")[21:33, 0:12]
    expected = padded if border == "edge" else np.zeros_like(padded)
    expected[:9, 4:] = pixels[21:30, 0:8]
    np.testing.assert_array_equal(copied, expected)


def test_worker_processes_write_the_same_bytes_as_one_process(tmp_path, lfw, monkeypatch):
    import fer.crop

    images = {f"face_{i:02d}": _resize(lfw[i], 48) for i in range(30)} | {
        f"other_{i}": _resize(lfw[150 + i], 48) for i in range(4)
    }
    src = make_dataset(tmp_path / "in", images)
    monkeypatch.setattr(fer.crop, "_PROCESSES_FROM_ROWS", 0)
    pools = []
    real_imap = fer.crop.ordered_imap

    def spy(fn, items, workers, *args, **kwargs):
        pools.append(workers)
        return real_imap(fn, items, workers, *args, **kwargs)

    monkeypatch.setattr(fer.crop, "ordered_imap", spy)
    outputs = {}
    for processes in (1, 2):
        runtime = CropRuntime(device="cpu", batch_size=8, processes=processes)
        crop_source(
            src, CropSettings(pad=0.17), runtime, tmp_path / f"p{processes}", progress=False
        )
        outputs[processes] = {
            p.name: p.read_bytes() for p in sorted((tmp_path / f"p{processes}").iterdir())
        }
    assert pools == [2]  # five batches over two processes; processes: 1 stayed in this one
    assert outputs[1] == outputs[2]
    rows = read_table(tmp_path / "p2").to_pylist()
    assert sum(r["crop_status"] in ("ok", "frame_face") for r in rows) >= 28


def _die(*args: object, **kwargs: object) -> None:
    import os

    os._exit(9)  # as the kernel's out-of-memory killer ends a process: no exception, no cleanup


def test_a_worker_process_that_dies_is_one_clear_error(tmp_path, lfw, monkeypatch):
    import fer.crop
    from fer.errors import FerDataError

    src = make_dataset(tmp_path / "in", {f"face_{i:02d}": _resize(lfw[i], 48) for i in range(8)})
    monkeypatch.setattr(fer.crop, "_PROCESSES_FROM_ROWS", 0)
    monkeypatch.setattr(fer.crop, "_crop_task", _die)
    runtime = CropRuntime(device="cpu", batch_size=2, processes=2)
    with pytest.raises(FerDataError, match="worker process ended abruptly"):
        crop_source(src, CropSettings(pad=0.17), runtime, tmp_path / "out", progress=False)
