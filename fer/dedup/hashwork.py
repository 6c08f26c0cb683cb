"""The per-image work of the dedup stage: decode each frame and face once, hash every view
(frame, face view, the frame's shifted sub-windows, each also mirrored) and cut the grey
verification views. It runs as engine tasks (`fer.engine`): the driver plans which rows to
hash, `HashWorker` reads the image bytes itself, so only hashes and small views come back.

A task names one run of rows of a crop shard (`crop`, `start`, `stop`, minus the offsets in
`skip`) and the spans of ingest shards that hold their frames (`frames`: [shard, start, stop]),
both sorted by id, the frames a superset of the crop rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image
from threadpoolctl import threadpool_limits

from fer.dataset import RowReader
from fer.dedup.verify import VIEW_SIDE, grey_view
from fer.errors import FerDataError
from fer.hashing import hash_arrays_with_mirror, hash_size_of, view_crop
from fer.images import decode_grey
from fer.parallel import ordered_imap
from fer.resample import resize_stack

__all__ = ["SUB_WINDOWS", "HashWorker"]

_SHIFT_SIDES = (0.97, 0.94, 0.89)
_SHIFT_ANCHORS = tuple((fx, fy) for fy in (0.0, 0.5, 1.0) for fx in (0.0, 0.5, 1.0))
SUB_WINDOWS = len(_SHIFT_SIDES) * len(_SHIFT_ANCHORS)
"""Sub-windows hashed per frame (sides 97, 94 and 89 %, on a 3 x 3 grid of positions): a copy
re-cropped by 2-10 % matches one of them far better than the whole frame
(`benchmarks/dedup_pairs.py`: with five 94 % windows 2.4 % of such copies were no candidate).
The 97 % side bridges the few percent by which the crop windows of two copies of one photo
differ when the detector merges candidates (`crop.defaults.merge_iou`)."""
_CROP_COLUMNS = ("id", "image", "crop_box", "crop_window")
_readers: dict[str, RowReader] = {}


class HashWorker:
    """Hashes the rows of each task (`fer.engine.BatchWorker`); `processes` > 1 spreads the
    tasks over a process pool (the local engine), 1 hashes here (one Ray actor per core)."""

    def __init__(self, method: str, hash_size: int, margin: float, processes: int = 1) -> None:
        self.work = partial(hash_task, method=method, size=hash_size, margin=margin)
        self.processes = processes

    def run(self, tasks: Iterator[dict[str, Any]]) -> Iterator[pa.Table]:
        for ids, words, views in ordered_imap(self.work, tasks, self.processes):
            yield pa.table(
                {
                    "id": pa.array(ids, pa.string()),
                    "words": _fixed_binary(words),
                    "views": _fixed_binary(views),
                }
            )


def hash_task(
    task: dict[str, Any], method: str, size: int, margin: float
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(ids, words, views) of one task's rows: words (n, 2, 2 + 2 * SUB_WINDOWS, w) uint64,
    direct then mirrored, of the frame, the face view, the frame's sub-windows and the face
    view's; views (n, 2, VIEW_SIDE, VIEW_SIDE) uint8, face then frame."""
    crop = _reader("crop").read(task["crop"], task["start"], task["stop"])
    if task["skip"]:
        keep = np.ones(crop.num_rows, bool)
        keep[task["skip"]] = False
        crop = crop.filter(pa.array(keep))
    ids = crop.column("id").to_pylist()
    faces = pc.struct_field(crop.column("image"), "bytes").to_pylist()
    views = _hash_views(crop, margin)
    frames = _frames_of(ids, task["frames"])
    # One BLAS thread: the engine runs a task per core, and BLAS threads on top of that made
    # the resize products 1.9x slower.
    with threadpool_limits(1, user_api="blas"):
        words, pictures = _hash_chunk(list(zip(frames, faces, views, strict=True)), method, size)
    return ids, words, pictures


def _reader(kind: str) -> RowReader:
    # One per process and kind: consecutive tasks of a process share row groups.
    if kind not in _readers:
        _readers[kind] = RowReader(_CROP_COLUMNS if kind == "crop" else ("id", "image"))
    return _readers[kind]


def _frames_of(ids: list[str], spans: list[list[Any]]) -> list[bytes]:
    """The frame bytes of each id, from ingest spans holding them in the same order."""
    frames: list[bytes] = []
    wanted = iter(ids)
    target = next(wanted, None)
    for shard, start, stop in spans:
        table = _reader("ingest").read(shard, start, stop)
        images = pc.struct_field(table.column("image"), "bytes").to_pylist()
        for row_id, data in zip(table.column("id").to_pylist(), images, strict=True):
            if row_id == target:
                frames.append(data)
                target = next(wanted, None)
    if target is not None:
        raise FerDataError(
            f"{spans[0][0] if spans else 'ingest'}: has no row {target!r}; "
            "re-run the ingest and crop stages"
        )
    return frames


def _fixed_binary(array: np.ndarray) -> pa.Array:
    width = int(np.prod(array.shape[1:])) * array.itemsize
    data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return pa.Array.from_buffers(pa.binary(width), len(array), [None, pa.py_buffer(data)])


def _hash_chunk(
    chunk: list[tuple[bytes, bytes, float]], method: str, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hash words and verification views of (frame, face, face view) rows; each image is
    decoded once. Square images (FER-style crops, face views) are resized together, a stack
    per side, by `fer.resample` (Pillow's bytes); others one at a time by Pillow."""
    width, height = hash_size_of(method, size)
    inputs = np.empty((len(chunk), 2 + 2 * SUB_WINDOWS, height, width), np.uint8)
    views = np.empty((len(chunk), 2, VIEW_SIDE, VIEW_SIDE), np.uint8)
    square: dict[int, list[tuple[int, int, np.ndarray]]] = {}  # side -> (row, slot, pixels)
    batched = width == height
    copies = []
    for k, (frame, face, view) in enumerate(chunk):
        grey = decode_grey(frame)
        _place(inputs, views, k, 0, grey, 1.0, square if batched else None)
        if face == frame and view >= 1.0:  # a crop of the whole frame is often the same file
            copies.append(k)
            continue
        if face != frame:
            grey = decode_grey(face)
        _place(inputs, views, k, 1, grey, view, square if batched else None)
    for side, items in square.items():
        _resize_group(inputs, views, side, items, width)
    for k in copies:
        inputs[k, 1], views[k, 0] = inputs[k, 0], views[k, 1]
        inputs[k, _SLOTS[1]] = inputs[k, _SLOTS[0]]
    words = np.stack(hash_arrays_with_mirror(inputs.reshape(-1, height, width), method, size))
    return words.reshape(2, len(chunk), inputs.shape[1], -1).swapaxes(0, 1), views


_SLOTS = (slice(2, 2 + SUB_WINDOWS), slice(2 + SUB_WINDOWS, None))
_BLOCK = 64  # images per resize product: its float64 temporaries stay in cache


def _place(
    inputs: np.ndarray,
    views: np.ndarray,
    row: int,
    slot: int,
    grey: Image.Image,
    view: float,
    square: dict[int, list[tuple[int, int, np.ndarray]]] | None,
) -> None:
    """Fill row's slot (0 frame, 1 face) from `grey` seen at `view`, or queue it for its
    side's stack when the hashed image is square (then it is also the compared view)."""
    hashed = view_crop(grey, view)
    if square is not None and hashed.width == hashed.height:
        square.setdefault(hashed.width, []).append((row, slot, np.asarray(hashed)))
        return
    height, width = inputs.shape[-2:]
    inputs[row, slot] = np.asarray(hashed.resize((width, height), Image.Resampling.LANCZOS))
    inputs[row, _SLOTS[slot]] = _sub_windows(hashed, width, height)
    views[row, 1 - slot] = grey_view(grey, view)


def _resize_group(
    inputs: np.ndarray,
    views: np.ndarray,
    side: int,
    items: list[tuple[int, int, np.ndarray]],
    size: int,
) -> None:
    """The hash input, sub-windows and compared view of square images of one side."""
    canvases = [(size, size)] + [(round(size / s), round(size / s)) for s in _SHIFT_SIDES]
    for first in range(0, len(items), _BLOCK):
        block = items[first : first + _BLOCK]
        rows = np.array([row for row, _, _ in block])
        slots = np.array([slot for _, slot, _ in block])
        pixels = np.stack([array for _, _, array in block])
        whole, *wide = resize_stack(pixels, canvases, "lanczos")
        (compared,) = resize_stack(pixels, [(VIEW_SIDE, VIEW_SIDE)], "bilinear")
        inputs[rows, slots] = whole
        views[rows, 1 - slots] = compared
        subs = np.empty((len(block), SUB_WINDOWS, size, size), np.uint8)
        k = 0
        for canvas in wide:
            extra = canvas.shape[-1] - size
            for fx, fy in _SHIFT_ANCHORS:
                left, top = round(extra * fx), round(extra * fy)
                subs[:, k] = canvas[:, top : top + size, left : left + size]
                k += 1
        for slot in (0, 1):
            chosen = slots == slot
            inputs[rows[chosen], _SLOTS[slot]] = subs[chosen]


def _sub_windows(grey: Image.Image, width: int, height: int) -> np.ndarray:
    """The hash inputs of every sub-window: one resize per scale to a canvas 1/scale larger,
    each window then an exact crop of it."""
    out = np.empty((SUB_WINDOWS, height, width), np.uint8)
    k = 0
    for side in _SHIFT_SIDES:
        wide_w, wide_h = round(width / side), round(height / side)
        wide = np.asarray(grey.resize((wide_w, wide_h), Image.Resampling.LANCZOS))
        for fx, fy in _SHIFT_ANCHORS:
            left, top = round((wide_w - width) * fx), round((wide_h - height) * fy)
            out[k] = wide[top : top + height, left : left + width]
            k += 1
    return out


def _hash_views(rows: pa.Table, margin: float) -> list[float]:
    """The face box grown by `margin` as a fraction of the crop window, per row (1: all)."""
    box, window = (
        rows.column("crop_box").combine_chunks(),
        rows.column("crop_window").combine_chunks(),
    )
    if box.null_count == len(box) or window.null_count == len(window):
        return [1.0] * len(box)
    side = pc.struct_field(window, "side").to_numpy(zero_copy_only=False).astype(np.float64)
    width = pc.struct_field(box, "w").to_numpy(zero_copy_only=False).astype(np.float64)
    height = pc.struct_field(box, "h").to_numpy(zero_copy_only=False).astype(np.float64)
    missing = (
        box.is_null().to_numpy(zero_copy_only=False)
        | window.is_null().to_numpy(zero_copy_only=False)
        | ~(side > 0)
        | np.isnan(width)
        | np.isnan(height)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        view = np.minimum(1.0, np.maximum(width, height) / side * (1 + 2 * margin))
    return np.where(missing, 1.0, view).tolist()
