"""Crop: find one face per image with MTCNN and replace the image by a square face crop."""

from __future__ import annotations

import hashlib
import heapq
import io
import math
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
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
from fer.dataset import (
    CROP_SCHEMA,
    DatasetWriter,
    RowReader,
    count_rows,
    dataset_shards,
    read_summary,
)
from fer.device import resolve_device, torch_threads
from fer.engine import Engine
from fer.engine.local import LocalEngine
from fer.errors import FerDataError
from fer.images import encode_png
from fer.parallel import ordered_imap, worker_count
from fer.sheet import contact_sheet, thumbnail

__all__ = ["CONTACT_SHEET", "CropWorker", "crop_source"]

CONTACT_SHEET = "contact_sheet.png"
_PAD_GRAY = 128
_DETECTED_FACE = 48
"""Pixels of the smallest allowed face at detection size: the O-net's input side (at 24,
the R-net's, `benchmarks/crop_sizes.py` found 2 points fewer faces at 1280 px, 15 % faster)."""
_NOT_FOUND = ("no_face", "low_score", "too_small")
_SHEET_TILES = 40
_TILE = 72
_RESULT_SCHEMA = pa.schema([*CROP_SCHEMA, pa.field("crop_detail", pa.string())])
"""What a crop worker hands back: the output row, and why a face was not found."""


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
    full_frame: bool = False
    """The detector input holds the image's own RGB pixels at full size (from `offset`): the
    crop is cut from it instead of decoding the image again."""


def crop_source(
    in_dir: str | Path,
    settings: CropSettings,
    runtime: CropRuntime,
    out_dir: str | Path,
    shard_bytes: int = 128 * 2**20,
    progress: bool = True,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Crop every image of an ingest output into `out_dir`; returns the summary.

    The batches run on `engine` (default: this process); every engine hands the results back
    in order to the one writer here, so the output is the same bytes whichever ran it."""
    upstream = read_summary(in_dir)
    source = upstream.get("source", Path(in_dir).name)
    engine = engine or LocalEngine()
    tasks = _batch_plan(in_dir, settings, runtime)
    factory = partial(
        CropWorker, settings, runtime, _process_count(settings, runtime, engine, tasks)
    )
    tally = _Tally(settings)
    with (
        DatasetWriter(
            out_dir,
            CROP_SCHEMA,
            shard_bytes=shard_bytes,
            summary_fields={"stage": "crop", "source": source, "engine": engine.name},
            count_columns=("crop_status", "source_label"),
        ) as writer,
        tqdm(
            total=count_rows(in_dir),
            desc=f"crop {source}",
            unit="img",
            disable=not progress,
            mininterval=1.0,
        ) as bar,
    ):
        gpu = settings.enabled and runtime.device != "cpu"
        for table in engine.map_tasks(factory, tasks, gpu=gpu):
            tally.add(table, writer)
            bar.update(table.num_rows)
        tally.sheet.save(writer.staging_dir / CONTACT_SHEET, source)
        return writer.close(tally.summary())


class CropWorker:
    """Crops the rows a task names (`shard`, `start`, `stop`): built once per process or
    actor, it loads the detector once; `run` pipelines decoding, detection and cutting.
    With `processes` > 1 the tasks are shared by that many processes, this one included (the
    local engine on CPUs), each with a worker of its own that crops a whole task on one thread."""

    def __init__(self, settings: CropSettings, runtime: CropRuntime, processes: int = 1) -> None:
        self.settings, self.runtime, self.processes = settings, runtime, processes
        self.detector = None
        if settings.enabled and processes == 1:
            from fer.crop.detector import FaceDetector

            self.detector = FaceDetector(
                settings.min_face_size,
                settings.thresholds,
                device=resolve_device(runtime.device, "crop.runtime.device"),
                merge_iou=settings.merge_iou,
                confident=settings.min_score,
            )

    def run(self, tasks: Iterator[dict[str, Any]]) -> Iterator[pa.Table]:
        if self.processes > 1:
            # Forked, as torch's DataLoader forks its workers: nothing to import again, and
            # each child sets one torch thread before its first op (what makes forking safe
            # after the parent has used OpenMP).
            import fer.crop.detector  # noqa: F401 (imported once here, inherited by the children)

            work = partial(_crop_task, settings=self.settings, runtime=self.runtime)
            # This process crops too (a worker of its own, built after the fork), whenever
            # the others are busy: one process fewer holds PyTorch and a batch.
            here = partial(_crop_here, [], self.settings, self.runtime)
            try:
                yield from ordered_imap(work, tasks, self.processes, here=here)
            except BrokenProcessPool as exc:
                raise FerDataError(
                    f"crop: a worker process ended abruptly ({exc}); the machine may be out "
                    "of memory: lower crop.runtime.pixel_budget or crop.runtime.processes"
                ) from None
            return
        reader = RowReader()
        with ThreadPoolExecutor(worker_count(self.runtime.workers)) as pool:
            batches = (
                reader.read(task["shard"], task["start"], task["stop"]).to_pylist()
                for task in tasks
            )
            for items in _processed(batches, self.settings, self.runtime, self.detector, pool):
                yield pa.Table.from_pylist(
                    [{**i.row, **i.extra, "crop_detail": i.detail} for i in items],
                    schema=_RESULT_SCHEMA,
                )

    def crop(self, task: dict[str, Any]) -> pa.Table:
        """The rows of one task, cropped."""
        return pa.concat_tables(self.run(iter([task])))


_PROCESSES_FROM_ROWS = 256
"""Fewer rows are cropped in this process (a batch or two: nothing to spread)."""
_process_worker: list[tuple[CropSettings, CropRuntime, CropWorker]] = []


def _process_count(
    settings: CropSettings, runtime: CropRuntime, engine: Engine, tasks: list[dict[str, Any]]
) -> int:
    """Processes for CPU detection on the local engine: one thread holds Python's lock
    between the small torch and Pillow calls, so threads kept ~1.5 of 2 cores busy and two
    processes cropped 1.6x the images (`benchmarks/crop_sizes.py`, 256 px photos)."""
    if not (settings.enabled and engine.in_process and len(tasks) > 1):
        return 1
    if sum(t["stop"] - t["start"] for t in tasks) < _PROCESSES_FROM_ROWS:
        return 1
    if resolve_device(runtime.device, "crop.runtime.device") != "cpu":
        return 1
    return min(worker_count(runtime.processes), len(tasks))


def _crop_task(task: dict[str, Any], settings: CropSettings, runtime: CropRuntime) -> pa.Table:
    """One task cropped in a worker process by that process's own single-threaded worker."""
    if not _process_worker or _process_worker[0][:2] != (settings, runtime):
        import torch

        torch.set_num_threads(1)  # the processes are the parallelism
        _process_worker[:] = [(settings, runtime, _alone(settings, runtime))]
    return _process_worker[0][2].crop(task)


def _crop_here(
    built: list[CropWorker], settings: CropSettings, runtime: CropRuntime, task: dict[str, Any]
) -> pa.Table:
    """One task cropped in the driving process, by a single-threaded worker built on first use."""
    if not built:
        built.append(_alone(settings, runtime))
    return built[0].crop(task)


def _alone(settings: CropSettings, runtime: CropRuntime) -> CropWorker:
    """A worker that crops on one thread: one of the processes that share the stage."""
    alone = runtime.model_copy(update={"device": "cpu", "workers": 1, "processes": 1})
    with torch_threads(1):  # the detector sizes its network thread pool by torch's threads
        return CropWorker(settings, alone)


class _Tally:
    """What the driver counts over the results: statuses per label, synthesized pixels, the
    contact sheet; and the rows a `no_face: drop` turns into rejects."""

    def __init__(self, settings: CropSettings) -> None:
        self.settings = settings
        self.by_label: dict[str, Counter[str]] = defaultdict(Counter)
        self.synthesized_sum, self.synthesized_count, self.synthesized_some = 0.0, 0, 0
        self.sheet = _SheetCollector()

    def add(self, table: pa.Table, writer: DatasetWriter) -> None:
        statuses = table.column("crop_status").to_pylist()
        labels = table.column("source_label").to_pylist()
        for label, status in zip(labels, statuses, strict=True):
            self.by_label[label][status] += 1
        shares = table.column("crop_synthesized").drop_null().to_numpy()
        self.synthesized_sum += float(shares.sum())
        self.synthesized_count += len(shares)
        self.synthesized_some += int(np.count_nonzero(shares))
        self.sheet.offer(table, statuses, labels)
        not_found = np.isin(np.array(statuses, dtype=object), _NOT_FOUND)
        if self.settings.no_face == "drop" and not_found.any():
            dropped = table.filter(pa.array(not_found))
            for row in dropped.select(["source", "id", "crop_status", "crop_detail"]).to_pylist():
                writer.reject(
                    row["source"], row["id"], row["id"], row["crop_status"], row["crop_detail"]
                )
            table = table.filter(pa.array(~not_found))
        writer.add_table(table)

    def summary(self) -> dict[str, Any]:
        count = self.synthesized_count
        return {
            "status_by_label": {
                k: dict(sorted(v.items())) for k, v in sorted(self.by_label.items())
            },
            "border": self.settings.border,
            "synthesized_pixel_share": round(self.synthesized_sum / count, 4) if count else 0.0,
            "crops_with_synthesized_pixels": self.synthesized_some,
            "found_rate_by_label": {
                k: round(v["ok"] / max(1, sum(v.values())), 4)
                for k, v in sorted(self.by_label.items())
            },
        }


def _batch_plan(
    in_dir: str | Path, settings: CropSettings, runtime: CropRuntime
) -> list[dict[str, Any]]:
    """Tasks of consecutive rows of one shard whose detector inputs hold at most
    `runtime.pixel_budget` pixels (and at most four detector calls of rows): memory is
    bounded whatever the image size. Only the width and height columns are read."""
    tasks: list[dict[str, Any]] = []
    side = (1 + 2 * settings.pad) ** 2
    for shard in dataset_shards(in_dir):
        sizes = pq.read_table(shard, columns=["width", "height"])
        widths = sizes.column("width").to_numpy()
        heights = sizes.column("height").to_numpy()
        start, pixels = 0, 0.0
        for k in range(len(widths)):
            w, h, _ = _detection_size(int(widths[k]), int(heights[k]), settings, runtime)
            size = w * h * side
            if k > start and (
                pixels + size > runtime.pixel_budget or k - start >= runtime.batch_size
            ):
                tasks.append({"shard": str(Path(shard).resolve()), "start": start, "stop": k})
                start, pixels = k, 0.0
            pixels += size
        if len(widths) > start:
            tasks.append({"shard": str(Path(shard).resolve()), "start": start, "stop": len(widths)})
    return tasks


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
    if not settings.enabled:
        # Passing images through: nothing to overlap, and two futures per row cost a fifth of
        # the stage (py-spy, 1 M rows).
        for rows in batches:
            items = [prepare(row) for row in rows]
            for item in items:
                finish(item)
            yield items
        return
    rows = next(batches, None)
    preparing = None if rows is None else [pool.submit(prepare, row) for row in rows]
    finishing: tuple[list[_Prepared], list[Future[None]]] | None = None
    while preparing is not None:
        items = [future.result() for future in preparing]
        rows = next(batches, None)
        preparing = None if rows is None else [pool.submit(prepare, row) for row in rows]
        if detector is not None:
            _detect(items, detector, runtime.batch_size, settings)
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
    image is detected at the smallest 1/2^k scale (JPEG DCT scaling, else a box reduce) at
    which that face still is _DETECTED_FACE pixels, and the pyramid starts where it is 12
    pixels; no resampling beyond the 1/2^k step (on CPUs the detector's cost hardly grows with
    the extra pixels; the resize cost more than it saved). Without it the longer side is
    scaled to at most `detect_max_side`. Images are never upscaled."""
    scale = min(1.0, runtime.detect_max_side / max(width, height, 1))
    if settings.min_face_fraction is None:
        smallest = float(settings.min_face_size)
    else:
        face = settings.min_face_fraction * min(width, height)
        scale = min(scale, _DETECTED_FACE / max(face, 1e-9))
        if scale < 1.0:
            step = 2 ** min(3, math.floor(math.log2(1 / scale)))
            sides = (max(12, -(-width // step)), max(12, -(-height // step)))
            return *sides, max(float(settings.min_face_size), face * sides[0] / width)
        smallest = max(float(settings.min_face_size), face)
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
        return item
    *size, item.min_face = _detection_size(width, height, settings, runtime)
    size = tuple(size)
    with Image.open(io.BytesIO(row["image"]["bytes"])) as image:
        if size != (width, height) and image.format == "JPEG":
            image.draft(image.mode, size)  # the smallest 1/2^k scale at least `size`
        mode = image.mode
        picture = image.convert("RGB")
    # Other formats take the same 1/2^k step by box filter, so both give the same picture.
    exact = next(
        (k for k in (8, 4, 2) if (-(-picture.width // k), -(-picture.height // k)) == size),
        None,
    )
    factor = exact or max(
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
    item.full_frame = mode == "RGB" and rgb.shape[:2] == (height, width)
    if settings.frame_face_score is not None:
        item.frame_box = np.array(
            [offset, offset, offset + rgb.shape[1], offset + rgb.shape[0]], np.float32
        )
    return item


def _detect(items: list[_Prepared], detector: Any, batch_size: int, settings: CropSettings) -> None:
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
                _score_rotated(empty, detector, settings)


def _score_rotated(items: list[_Prepared], detector: Any, settings: CropSettings) -> None:
    """Frames below the threshold upright are scored rotated; the best score counts."""
    threshold, angles = settings.frame_face_score, settings.frame_face_angles
    low = [i for i in items if angles and threshold is not None and i.frame_score < threshold]
    if not low:
        return
    scores = detector.score_boxes(
        np.stack([i.detector_input for i in low]), np.stack([i.frame_box for i in low]), angles
    )
    for item, score in zip(low, scores, strict=True):
        item.frame_score = max(item.frame_score, round(float(score), 4))


def _finish(item: _Prepared, settings: CropSettings) -> None:
    """Choose the face, then decode the image at full resolution, cut the window and encode
    it; only the encoded crop stays in memory."""
    if item.status == "":
        _cut(item, settings)
    item.detector_input = None
    item.extra["crop_status"] = item.status


def _cut(item: _Prepared, settings: CropSettings) -> None:
    boxes, scores, landmarks = item.faces
    width, height = item.row["width"], item.row["height"]
    item.extra["crop_faces"] = len(boxes)
    window: CropWindow | None = None
    face_side = 0.0
    if len(boxes):
        best = select_face(boxes, scores, width, height, settings.select, settings.min_score)
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
    if item.full_frame:
        at = item.offset
        region = item.detector_input[at + top : at + bottom, at + left : at + right]
    else:
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


class _SheetCollector:
    """Thumbnails for the contact sheet: the first faces not found, and a hash-chosen sample
    of crops; only the images chosen are decoded."""

    def __init__(self) -> None:
        self.rejected: list[tuple[str, str, np.ndarray]] = []
        self.sample: list[tuple[int, str, str, np.ndarray]] = []

    def offer(self, table: pa.Table, statuses: Sequence[str], labels: Sequence[Any]) -> None:
        ids = table.column("id").to_pylist()
        images = None
        for index, (row_id, status) in enumerate(zip(ids, statuses, strict=True)):
            entry: tuple[int, str, str] | None = None
            if status in _NOT_FOUND and len(self.rejected) < _SHEET_TILES:
                entry = (0, row_id, f"{status} {labels[index]}")
            elif status in ("ok", "source_box", "frame_face"):
                # Keep the smallest hashes: a max-heap via the negated key, bounded to the sheet size.
                key = -int(hashlib.md5(row_id.encode()).hexdigest()[:16], 16)
                if len(self.sample) < _SHEET_TILES or key > self.sample[0][0]:
                    entry = (key, row_id, str(labels[index]))
            if entry is None:
                continue
            if images is None:
                images = pc.struct_field(table.column("image"), "bytes")
            tile = thumbnail(images[index].as_py(), _TILE)
            if status in _NOT_FOUND:
                self.rejected.append((row_id, entry[2], tile))
            elif len(self.sample) < _SHEET_TILES:
                heapq.heappush(self.sample, (*entry, tile))
            else:
                heapq.heapreplace(self.sample, (*entry, tile))

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
