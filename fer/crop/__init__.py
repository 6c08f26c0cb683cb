"""Crop: find one face per image with MTCNN and replace the image by a square face crop."""

from __future__ import annotations

import hashlib
import heapq
import io
import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from fer.config import CropRuntime, CropSettings
from fer.crop.geometry import (
    CropWindow,
    crop_window,
    cut_crop,
    fit_window,
    quantise,
    select_face,
    synthesized_share,
    window_region,
)
from fer.dataset import CROP_SCHEMA, DatasetWriter, count_rows, iter_batches, read_summary
from fer.device import resolve_device
from fer.images import encode_png
from fer.parallel import worker_count
from fer.sheet import contact_sheet, thumbnail

__all__ = ["CONTACT_SHEET", "crop_source"]

CONTACT_SHEET = "contact_sheet.png"
_PAD_GRAY = 128
_DETECTED_FACE = 48
"""Pixels of the smallest allowed face at detection size: the O-net's input side (at 24,
the R-net's, `benchmarks/crop_sizes.py` found 2 points fewer faces at 1280 px, 15 % faster)."""
_NOT_FOUND = ("no_face", "low_score", "too_small")
_SHEET_TILES = 40
_TILE = 72


@dataclass
class _Prepared:
    row: dict[str, Any]
    detector_input: np.ndarray | None = None
    scale: float = 1.0
    offset: int = 0
    faces: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    frame_score: float | None = None
    frame_box: np.ndarray | None = None
    status: str = ""
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    min_face: float = 20.0
    """Smallest face searched, in detector-input pixels."""
    thumbnail: np.ndarray | None = None
    """The contact-sheet tile of the crop, or of the image when no face was cut."""


def crop_source(
    in_dir: str | Path,
    settings: CropSettings,
    runtime: CropRuntime,
    out_dir: str | Path,
    shard_bytes: int = 128 * 2**20,
    progress: bool = True,
) -> dict[str, Any]:
    """Crop every image of an ingest output into `out_dir`; returns the summary."""
    upstream = read_summary(in_dir)
    source = upstream.get("source", Path(in_dir).name)
    detector = None
    if settings.enabled:
        from fer.crop.detector import FaceDetector

        detector = FaceDetector(
            settings.min_face_size,
            settings.thresholds,
            device=resolve_device(runtime.device, "crop.runtime.device"),
        )
    by_label: dict[str, Counter[str]] = defaultdict(Counter)
    synthesized: list[float] = []
    sheet = _SheetCollector()
    total = count_rows(in_dir)
    with (
        ThreadPoolExecutor(worker_count(runtime.workers)) as pool,
        DatasetWriter(
            out_dir,
            CROP_SCHEMA,
            shard_bytes=shard_bytes,
            summary_fields={"stage": "crop", "source": source},
            count_columns=("crop_status", "source_label"),
        ) as writer,
        tqdm(
            total=total, desc=f"crop {source}", unit="img", disable=not progress, mininterval=1.0
        ) as bar,
    ):
        for items in _processed(
            _pixel_batches(in_dir, settings, runtime), settings, runtime, detector, pool
        ):
            for item in items:
                by_label[item.row["source_label"]][item.status] += 1
                if "crop_synthesized" in item.extra:
                    synthesized.append(item.extra["crop_synthesized"])
                sheet.offer(item)
                locator = item.row["id"]
                if item.status in _NOT_FOUND and settings.no_face == "drop":
                    writer.reject(
                        item.row["source"], item.row["id"], locator, item.status, item.detail
                    )
                else:
                    writer.add({**item.row, **item.extra}, locator)
            bar.update(len(items))
        sheet.save(writer.staging_dir / CONTACT_SHEET, source)
        return writer.close(
            {
                "status_by_label": {
                    k: dict(sorted(v.items())) for k, v in sorted(by_label.items())
                },
                "border": settings.border,
                "synthesized_pixel_share": round(float(np.mean(synthesized)), 4)
                if synthesized
                else 0.0,
                "crops_with_synthesized_pixels": int(np.count_nonzero(synthesized)),
                "found_rate_by_label": {
                    k: round(v["ok"] / max(1, sum(v.values())), 4)
                    for k, v in sorted(by_label.items())
                },
            }
        )


def _pixel_batches(
    in_dir: str | Path, settings: CropSettings, runtime: CropRuntime
) -> Iterator[list[dict[str, Any]]]:
    """Rows in batches whose detector inputs hold at most `runtime.pixel_budget` pixels (and
    at most four detector calls of rows): memory is bounded whatever the image size."""
    rows: list[dict[str, Any]] = []
    pixels = 0
    for batch in iter_batches(in_dir, batch_size=256):
        widths = batch.column("width").to_numpy(zero_copy_only=False)
        heights = batch.column("height").to_numpy(zero_copy_only=False)
        for k, row in enumerate(batch.to_pylist()):
            w, h, _ = _detection_size(int(widths[k]), int(heights[k]), settings, runtime)
            side = 1 + 2 * settings.pad
            size = w * h * side * side
            if rows and (
                pixels + size > runtime.pixel_budget or len(rows) >= 4 * runtime.batch_size
            ):
                yield rows
                rows, pixels = [], 0
            rows.append(row)
            pixels += size
    if rows:
        yield rows


def _processed(
    batches: Iterator[list[dict[str, Any]]],
    settings: CropSettings,
    runtime: CropRuntime,
    detector: Any,
    pool: ThreadPoolExecutor,
) -> Iterator[list[_Prepared]]:
    """Each batch decoded at detection size, detected, then cut and encoded at full size, in
    order; the threads decode the next batch and cut the previous one while the detector runs
    (at most two batches of detector inputs are alive)."""
    prepare = partial(_prepare, settings=settings, runtime=runtime)
    finish = partial(_finish, settings=settings)
    rows = next(batches, None)
    preparing = None if rows is None else [pool.submit(prepare, row) for row in rows]
    finishing: tuple[list[_Prepared], list[Future[None]]] | None = None
    while preparing is not None:
        items = [future.result() for future in preparing]
        rows = next(batches, None)
        preparing = None if rows is None else [pool.submit(prepare, row) for row in rows]
        if detector is not None:
            _detect(items, detector, runtime.batch_size)
        if finishing is not None:
            yield _finished(*finishing)
        finishing = items, [pool.submit(finish, item) for item in items]
    if finishing is not None:
        yield _finished(*finishing)


def _finished(items: list[_Prepared], futures: list[Future[None]]) -> list[_Prepared]:
    for future in futures:
        future.result()
    return items


def _detection_size(
    width: int, height: int, settings: CropSettings, runtime: CropRuntime
) -> tuple[int, int, float]:
    """(width, height, smallest face in pixels) of an image as the detector sees it.

    With `min_face_fraction` the smallest face allowed is that share of the shorter side: the
    image is detected where that face is _DETECTED_FACE pixels, and the pyramid starts where
    it is 12 pixels. The longer side is at most `detect_max_side`; images are never
    upscaled."""
    scale = min(1.0, runtime.detect_max_side / max(width, height, 1))
    if settings.min_face_fraction is None:
        smallest = float(settings.min_face_size)
    else:
        face = settings.min_face_fraction * min(width, height)
        scale = min(scale, _DETECTED_FACE / max(face, 1e-9))
        smallest = max(float(settings.min_face_size), face * scale)
    if scale >= 1.0:
        return width, height, smallest
    return max(12, round(width * scale)), max(12, round(height * scale)), smallest


def _prepare(row: dict[str, Any], settings: CropSettings, runtime: CropRuntime) -> _Prepared:
    """Decode an image at its detection size only (JPEGs by DCT scaling, Pillow's `draft`)."""
    item = _Prepared(row)
    item.extra = {
        "original_width": row["width"],
        "original_height": row["height"],
        "crop_faces": 0,
    }
    if not settings.enabled:
        item.status = "skipped"
        return item
    width, height = row["width"], row["height"]
    if min(height, width) < 12:
        item.status, item.detail = "too_small", f"{width}x{height} is below MTCNN's 12-pixel window"
        item.thumbnail = thumbnail(row["image"]["bytes"], _TILE)
        return item
    *size, item.min_face = _detection_size(width, height, settings, runtime)
    size = tuple(size)
    with Image.open(io.BytesIO(row["image"]["bytes"])) as image:
        if size != (width, height) and image.format == "JPEG":
            image.draft(image.mode, size)  # the smallest 1/2^k scale at least `size`
        picture = image.convert("RGB")
    # Other formats take the same 1/2^k step by box filter, so both give the same picture.
    factor = max(
        (
            k
            for k in (8, 4, 2, 1)
            if picture.width // k >= size[0] and picture.height // k >= size[1]
        ),
        default=1,
    )
    if factor > 1:
        picture = picture.reduce(factor)
    if picture.size != size:
        picture = picture.resize(size, Image.Resampling.BILINEAR)
    rgb = np.asarray(picture)
    offset = round(settings.pad * max(rgb.shape[:2]))
    bucket = runtime.bucket
    canvas_h = math.ceil((rgb.shape[0] + 2 * offset) / bucket) * bucket
    canvas_w = math.ceil((rgb.shape[1] + 2 * offset) / bucket) * bucket
    canvas = np.full((canvas_h, canvas_w, 3), _PAD_GRAY, dtype=np.uint8)
    canvas[offset : offset + rgb.shape[0], offset : offset + rgb.shape[1]] = rgb
    item.detector_input, item.scale, item.offset = canvas, rgb.shape[1] / width, offset
    if settings.frame_face_score is not None:
        item.frame_box = np.array(
            [offset, offset, offset + rgb.shape[1], offset + rgb.shape[0]], np.float32
        )
    return item


def _detect(items: list[_Prepared], detector: Any, batch_size: int) -> None:
    buckets: dict[tuple[Any, ...], list[_Prepared]] = defaultdict(list)
    for item in items:
        if item.detector_input is not None:
            buckets[(*item.detector_input.shape, item.min_face)].append(item)
    for key, group in buckets.items():
        for start in range(0, len(group), batch_size):
            batch = group[start : start + batch_size]
            found = detector.detect(np.stack([i.detector_input for i in batch]), key[-1])
            for index, item in enumerate(batch):
                mine = found.image == index
                boxes = (found.boxes[mine] - item.offset) / item.scale
                landmarks = (found.landmarks[mine] - item.offset) / item.scale
                item.faces = (
                    quantise(boxes),
                    np.round(found.scores[mine].astype(np.float64), 4),
                    quantise(landmarks),
                )
            # Tight face crops (FER2013) often give the detector no face: score the whole
            # frame as the candidate with the O-net instead.
            empty = [i for i in batch if not len(i.faces[0]) and i.frame_box is not None]
            if empty:
                scores = detector.score_boxes(
                    np.stack([i.detector_input for i in empty]),
                    np.stack([i.frame_box for i in empty]),
                )
                for item, score in zip(empty, scores, strict=True):
                    item.frame_score = round(float(score), 4)


def _finish(item: _Prepared, settings: CropSettings) -> None:
    """Choose the face, then decode the image at full resolution, cut the window and encode
    it; only the encoded crop and a contact-sheet tile stay in memory."""
    if item.status == "":
        _cut(item, settings)
    if item.thumbnail is None and item.detector_input is not None:
        # Nothing was cut: the contact sheet shows the image as the detector saw it.
        rows, columns = (
            round(side * item.scale) for side in (item.row["height"], item.row["width"])
        )
        frame = item.detector_input[
            item.offset : item.offset + rows, item.offset : item.offset + columns
        ]
        item.thumbnail = thumbnail(frame, _TILE)
    item.detector_input = None
    item.extra["crop_status"] = item.status


def _cut(item: _Prepared, settings: CropSettings) -> None:
    boxes, scores, landmarks = item.faces
    width, height = item.row["width"], item.row["height"]
    item.extra["crop_faces"] = len(boxes)
    window: CropWindow | None = None
    face_side = 0.0
    if len(boxes):
        best = select_face(boxes, scores, width, height, settings.select)
        box, score, points = boxes[best], float(scores[best]), landmarks[best]
        item.extra.update(
            crop_box={
                k: float(v)
                for k, v in zip(
                    "xywh", (box[0], box[1], box[2] - box[0], box[3] - box[1]), strict=True
                )
            },
            crop_score=score,
            crop_landmarks=points.reshape(-1).tolist(),
        )
        if score >= settings.min_score:
            item.status = "ok"
            window = crop_window(box, settings.margin, points, settings.align)
            face_side = float(max(box[2] - box[0], box[3] - box[1]))
        else:
            item.status = "low_score"
            item.detail = f"best face score {score:.3f} < min_score {settings.min_score}"
    elif (
        settings.frame_face_score is not None
        and item.frame_score is not None
        and item.frame_score >= settings.frame_face_score
    ):
        # The whole frame is the face: keep it uncut (a square window as large as the frame).
        item.status = "frame_face"
        item.extra["crop_score"] = item.frame_score
        side = float(min(width, height))
        window = CropWindow(width / 2, height / 2, side, 0.0)
        face_side = side
    else:
        item.status, item.detail = "no_face", "MTCNN found no face"
        if item.frame_score is not None:
            item.detail += f" (whole-frame O-net score {item.frame_score:.3f})"
    source_box = item.row.get("source_box")
    if window is None and settings.no_face == "source_box" and source_box:
        x, y, w, h = (source_box[k] for k in "xywh")
        window = crop_window(np.array([x, y, x + w, y + h]), settings.margin)
        face_side = float(max(w, h))
        item.status = "source_box"
    if window is None:
        return
    if settings.border == "fit":
        window = fit_window(window, width, height)
    # Decode once and convert only the region the window reads: memory follows the window.
    left, top, right, bottom = window_region(window, width, height, settings.output_size)
    with Image.open(io.BytesIO(item.row["image"]["bytes"])) as image:
        region = np.asarray(image.crop((left, top, right, bottom)))
    local = CropWindow(window.cx - left, window.cy - top, window.side, window.angle)
    crop = cut_crop(region, local, settings.output_size, settings.border)
    del region
    item.extra["crop_margin"] = round((window.side / face_side - 1) / 2, 4) if face_side else None
    item.extra["crop_synthesized"] = round(synthesized_share(window, width, height), 4)
    item.extra["crop_angle"] = window.angle
    item.extra["crop_window"] = {
        "cx": window.cx,
        "cy": window.cy,
        "side": window.side,
        "angle": window.angle,
    }
    item.row = {
        **item.row,
        "image": {"bytes": encode_png(crop), "path": item.row["image"]["path"]},
        "width": crop.shape[1],
        "height": crop.shape[0],
    }
    item.thumbnail = thumbnail(crop, _TILE)


class _SheetCollector:
    """Thumbnails for the contact sheet: faces not found, and a hash-chosen sample of crops."""

    def __init__(self) -> None:
        self.rejected: list[tuple[str, str, np.ndarray]] = []
        self.sample: list[tuple[str, str, str, np.ndarray]] = []

    def offer(self, item: _Prepared) -> None:
        if item.thumbnail is None:
            return
        if item.status in _NOT_FOUND and len(self.rejected) < _SHEET_TILES:
            caption = f"{item.status} {item.row['source_label']}"
            self.rejected.append((item.row["id"], caption, item.thumbnail))
        elif item.status in ("ok", "source_box", "frame_face"):
            # Keep the smallest hashes: a max-heap via the negated key, bounded to the sheet size.
            key = -int(hashlib.md5(item.row["id"].encode()).hexdigest()[:16], 16)
            entry = (key, item.row["id"], str(item.row["source_label"]), item.thumbnail)
            if len(self.sample) < _SHEET_TILES:
                heapq.heappush(self.sample, entry)
            elif entry[0] > self.sample[0][0]:
                heapq.heapreplace(self.sample, entry)

    def save(self, path: Path, source: str) -> None:
        sample = [(i, s, t) for _, i, s, t in sorted(self.sample, reverse=True)]
        contact_sheet(
            [
                (f"{source}: faces not found (first {_SHEET_TILES})", self.rejected),
                (f"{source}: sample of crops", sample),
            ],
            path,
            _TILE,
        )
