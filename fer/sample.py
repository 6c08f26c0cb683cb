"""The bundled sample: real face photos from scikit-image dressed as FER2013 and AffectNet.

Faces come from `skimage.data.lfw_subset()` (100 LFW faces and 100 non-faces, 25x25) and
`skimage.data.astronaut()`. Labels are synthetic (assigned round-robin), so the sample
exercises the pipeline, not emotion recognition. Planted duplicates, bad rows and bad files
are listed in `sample_ground_truth.json` so tests can check that each one is caught.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

__all__ = ["AFFECTNET_FOLDERS", "FER2013_NAMES", "GROUND_TRUTH_FILE", "write_sample"]

FER2013_NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# Kaggle AffectNet folder names, in FER2013 index order, plus contempt.
AFFECTNET_FOLDERS = ("anger", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt")
GROUND_TRUTH_FILE = "sample_ground_truth.json"
FER2013_CSV = "fer2013.csv"
AFFECTNET_DIR = "affectnet"
_ASTRONAUT_FACE = (160, 50, 300, 190)  # left, top, right, bottom of the face in astronaut()
_N_CSV_FACES = 60


def write_sample(out_dir: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write `fer2013.csv`, `affectnet/` and the ground truth into `out_dir`; return the truth."""
    from skimage import data as skdata

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lfw = (skdata.lfw_subset() * 255).round().astype(np.uint8)
    faces, non_faces = lfw[:100], lfw[100:]
    astronaut = skdata.astronaut()
    truth: dict[str, Any] = {
        "about": "fer-data sample: real faces from scikit-image, SYNTHETIC labels",
        "duplicates": [],
        "rejects": [],
        "normalised": [],
        "non_faces": [],
        "astronaut": [],
    }
    gray48 = [_resize(face, 48) for face in faces]
    rows = _fer2013_rows(gray48, astronaut, rng, truth)
    _write_csv(out_dir / FER2013_CSV, rows)
    folder = out_dir / AFFECTNET_DIR
    shutil.rmtree(folder, ignore_errors=True)
    files = _affectnet_files(faces, non_faces, gray48, astronaut, rows, rng, truth)
    for relative, payload in sorted(files.items()):
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    truth["counts"] = {"fer2013_rows": len(rows), "affectnet_files": len(files)}
    (out_dir / GROUND_TRUTH_FILE).write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")
    return truth


def _resize(pixels: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).resize((side, side), Image.Resampling.BICUBIC))


def _fer_id(index: int) -> str:
    return f"fer2013/{index:06d}"


def _pixels_text(pixels: np.ndarray) -> str:
    return " ".join(map(str, pixels.ravel().tolist()))


def _usage(i: int) -> str:
    return {8: "PublicTest", 9: "PrivateTest"}.get(i % 10, "Training")


def _jpeg_roundtrip(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


def _fer2013_rows(
    gray48: list[np.ndarray], astronaut: np.ndarray, rng: np.random.Generator, truth: dict[str, Any]
) -> list[list[str]]:
    """CSV records (emotion, pixels, Usage); bad ones are recorded in truth by position."""
    good: list[tuple[np.ndarray, int, str]] = []
    for i in range(_N_CSV_FACES):
        pixels = gray48[i]
        if rng.random() < 0.3:
            pixels = pixels[:, ::-1]
        pixels = np.clip(pixels.astype(np.float32) * rng.uniform(0.85, 1.15), 0, 255).astype(
            np.uint8
        )
        good.append((pixels, i % 7, _usage(i)))
    astro = Image.fromarray(astronaut).crop(_ASTRONAUT_FACE).convert("L").resize((48, 48))
    good.append((np.asarray(astro), 3, "Training"))
    astronaut_index = len(good) - 1
    planted = [
        ("exact", 3, lambda p: p, True),
        ("exact", 5, lambda p: p, False),
        ("near", 7, lambda p: np.clip(p.astype(np.int16) + 14, 0, 255).astype(np.uint8), True),
        (
            "near",
            9,
            lambda p: np.asarray(Image.fromarray(p).filter(ImageFilter.GaussianBlur(0.6))),
            True,
        ),
        ("near", 11, lambda p: _jpeg_roundtrip(p, 70), True),
    ]
    copies = []
    for kind, original, change, same_label in planted:
        pixels, label, usage = good[original]
        copy_label = label if same_label else (label + 1) % 7
        copies.append(
            (change(pixels), copy_label, "PrivateTest" if usage == "Training" else "Training")
        )
        truth["duplicates"].append({"kind": kind, "of": original, "same_label": same_label})
    good.extend(copies)
    bad = [
        (["7", _pixels_text(gray48[0]), "Training"], "label_out_of_range"),
        (["happy", _pixels_text(gray48[1]), "Training"], "bad_label"),
        (["2", _pixels_text(gray48[2])[:-4].rsplit(" ", 1)[0], "Training"], "wrong_pixel_count"),
        (["2", "300 " + _pixels_text(gray48[3].ravel()[1:]), "Training"], "pixel_out_of_range"),
        (["2", "x1 " + _pixels_text(gray48[4].ravel()[1:]), "PublicTest"], "bad_pixel_value"),
        (["4", _pixels_text(gray48[5]), "Validation"], "unknown_usage"),
        (["4", _pixels_text(gray48[6])], "wrong_column_count"),
    ]
    rows: list[list[str]] = []
    index_of_good: dict[int, int] = {}
    bad_iter = iter(bad)
    for g, (pixels, label, usage) in enumerate(good):
        if g and g % 9 == 0:
            record, reason = next(bad_iter, (None, None))
            if record is not None:
                truth["rejects"].append(_csv_reject(len(rows), reason))
                rows.append(record)
        index_of_good[g] = len(rows)
        rows.append([str(label), _pixels_text(pixels), usage])
    for record, reason in bad_iter:
        truth["rejects"].append(_csv_reject(len(rows), reason))
        rows.append(record)
    for entry, copy_position in zip(
        truth["duplicates"], range(len(good) - len(copies), len(good)), strict=True
    ):
        entry["ids"] = [
            _fer_id(index_of_good[entry.pop("of")]),
            _fer_id(index_of_good[copy_position]),
        ]
        entry["cross_source"] = False
    truth["astronaut"].append(_fer_id(index_of_good[astronaut_index]))
    truth["_fer_index"] = index_of_good
    return rows


def _csv_reject(index: int, reason: str) -> dict[str, str]:
    # Line 1 is the header, so data row `index` sits on line index + 2.
    return {
        "source": "fer2013",
        "id": _fer_id(index),
        "reason": reason,
        "locator": f"{FER2013_CSV}:{index + 2}",
    }


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerows(rows)


def _tinted_rgb(gray: np.ndarray, tint: tuple[float, float, float]) -> Image.Image:
    rgb = np.stack([gray.astype(np.float32) * t for t in tint], axis=-1)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), mode="RGB")


def _jpeg(image: Image.Image, quality: int = 92, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, **kwargs)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _bomb_png(side: int = 30000) -> bytes:
    """A tiny PNG whose header claims side x side pixels: a decompression bomb to refuse."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _affectnet_face(
    face25: np.ndarray, rng: np.random.Generator, side: int, backdrop: np.ndarray
) -> Image.Image:
    """A tinted face over a blurred photo backdrop, like AffectNet's crops with background."""
    face_side = int(side * rng.uniform(0.6, 0.72))
    face = _tinted_rgb(
        _resize(face25, face_side), (1.0, rng.uniform(0.85, 0.95), rng.uniform(0.72, 0.85))
    )
    top, left = (int(v) for v in rng.integers(0, backdrop.shape[0] - side, size=2))
    patch = Image.fromarray(backdrop[top : top + side, left : left + side])
    image = patch.filter(ImageFilter.GaussianBlur(3))
    mask = Image.new("L", (face_side, face_side), 0)
    inset = face_side // 14
    ImageDraw.Draw(mask).ellipse(
        (inset, inset // 2, face_side - inset, face_side - inset // 2), fill=255
    )
    mask = mask.filter(ImageFilter.GaussianBlur(face_side / 20))
    corner = (side - face_side) // 2
    jitter = [int(v) for v in rng.integers(-side // 12, side // 12 + 1, size=2)]
    image.paste(face, (corner + jitter[0], corner + jitter[1]), mask)
    image = image.rotate(
        float(rng.uniform(-8, 8)), resample=Image.Resampling.BICUBIC, fillcolor=(96, 96, 96)
    )
    return ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.85, 1.15)))


def _affectnet_files(
    faces: np.ndarray,
    non_faces: np.ndarray,
    gray48: list[np.ndarray],
    astronaut: np.ndarray,
    rows: list[list[str]],
    rng: np.random.Generator,
    truth: dict[str, Any],
) -> dict[str, bytes]:
    from skimage import data as skdata

    files: dict[str, bytes] = {}
    counter = iter(range(1, 10_000))
    backdrop = skdata.coffee()

    def add(folder: str, payload: bytes, ext: str = "jpg") -> str:
        relative = f"{folder}/image{next(counter):07d}.{ext}"
        files[relative] = payload
        return f"{AFFECTNET_DIR}/{relative}"

    for i in range(_N_CSV_FACES, 100):
        folder = AFFECTNET_FOLDERS[7 if i >= 97 else i % 7]
        side = (96, 96, 128, 160)[i % 4]
        image = _affectnet_face(faces[i], rng, side, backdrop)
        face_id = add(folder, _jpeg(image))
        if i == _N_CSV_FACES:
            copy_id = add(
                folder, _jpeg(image.resize((128, 128), Image.Resampling.BICUBIC), quality=60)
            )
            truth["duplicates"].append(
                {
                    "kind": "near",
                    "ids": [face_id, copy_id],
                    "cross_source": False,
                    "same_label": True,
                }
            )
    fer_index = truth.pop("_fer_index")
    for g, same_label in ((0, True), (1, True), (2, False)):
        pixels = np.array(rows[fer_index[g]][1].split(), dtype=np.uint8).reshape(48, 48)
        label = int(rows[fer_index[g]][0])
        folder = AFFECTNET_FOLDERS[label if same_label else (label + 3) % 7]
        upscaled = Image.fromarray(pixels).resize((96, 96), Image.Resampling.BICUBIC).convert("RGB")
        copy_id = add(folder, _jpeg(upscaled, quality=95))
        truth["duplicates"].append(
            {
                "kind": "near",
                "ids": [_fer_id(fer_index[g]), copy_id],
                "cross_source": True,
                "same_label": same_label,
            }
        )
    for j in range(8):
        image = _tinted_rgb(_resize(non_faces[j * 7], 96), (1.0, 0.95, 0.9))
        truth["non_faces"].append(add(AFFECTNET_FOLDERS[j % 7], _jpeg(image)))
    whole = Image.fromarray(astronaut)
    face = whole.crop(_ASTRONAUT_FACE)
    truth["astronaut"].append(
        add("happy", _jpeg(whole.resize((256, 256), Image.Resampling.BICUBIC)))
    )
    truth["astronaut"].append(
        add("happy", _jpeg(face.resize((128, 128), Image.Resampling.BICUBIC)))
    )
    rotated = whole.rotate(20, resample=Image.Resampling.BICUBIC, center=(230, 120)).crop(
        (120, 10, 340, 230)
    )
    truth["astronaut"].append(add("surprise", _jpeg(rotated.resize((160, 160)))))
    # The astronaut's FER2013-style crop, face crop and whole frame are one photo: a duplicate
    # group across sources. The 20-degree rotated copy joins it only with crop `align: true`.
    truth["duplicates"].append(
        {"kind": "near", "ids": truth["astronaut"][:3], "cross_source": True, "same_label": True}
    )

    base = _affectnet_face(faces[61], rng, 96, backdrop)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = base.transpose(Image.Transpose.ROTATE_90)
    normalised = [
        ("sad", _jpeg(base.convert("CMYK")), "jpg", "mode_CMYK_to_RGB"),
        (
            "fear",
            _png(base.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)),
            "png",
            "mode_P_to_RGB",
        ),
        (
            "neutral",
            _png(Image.fromarray(np.asarray(base.convert("L")).astype(np.uint16) * 257)),
            "png",
            "mode_I;16_to_L",
        ),
        ("happy", _png(_with_alpha(base)), "png", "mode_RGBA_to_RGB"),
        ("anger", _jpeg(stored, exif=exif.tobytes()), "jpg", "exif_orientation_6"),
        ("surprise", _bmp(base), "bmp", "format_BMP_to_PNG"),
    ]
    for folder, payload, ext, note in normalised:
        truth["normalised"].append({"id": add(folder, payload, ext), "note": note})
    # The same face in other encodings is a duplicate group too, the RGBA one included: its
    # transparent corners composite to white, a fifth of the frame, but its face view is the
    # same and matches a sub-window of the others' face views.
    truth["duplicates"].append(
        {
            "kind": "near",
            "ids": [n["id"] for n in truth["normalised"]],
            "cross_source": False,
            "same_label": False,
        }
    )

    good_jpeg = _jpeg(_affectnet_face(faces[62], rng, 96, backdrop))
    broken = [
        ("happy", b"", "jpg", "empty_file"),
        ("sad", good_jpeg[: len(good_jpeg) * 3 // 5], "jpg", "truncated_image"),
        ("fear", b"this is a caption, not an image\n", "jpg", "not_an_image"),
        ("neutral", _bomb_png(), "png", "decompression_bomb"),
    ]
    for folder, payload, ext, reason in broken:
        row_id = add(folder, payload, ext)
        truth["rejects"].append(
            {
                "source": "affectnet",
                "id": row_id,
                "reason": reason,
                "locator": row_id.split("/", 1)[1],
            }
        )
    files["labels.txt"] = b"class folders: " + " ".join(AFFECTNET_FOLDERS).encode() + b"\n"
    truth["rejects"].append(
        {
            "source": "affectnet",
            "id": f"{AFFECTNET_DIR}/labels.txt",
            "reason": "no_class_folder",
            "locator": "labels.txt",
        }
    )
    return files


def _with_alpha(image: Image.Image) -> Image.Image:
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).ellipse((4, 4, image.width - 4, image.height - 4), fill=255)
    rgba = image.convert("RGBA")
    rgba.putalpha(mask)
    return rgba


def _bmp(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="BMP")
    return buffer.getvalue()
