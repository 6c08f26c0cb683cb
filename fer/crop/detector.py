"""Batched MTCNN face detection with facenet-pytorch's networks and weights (`fer.crop.mtcnn`).

facenet-pytorch's `detect_face` crops every candidate box in a Python loop before its second
and third networks, runs them channels-first (where max-pooling is several times slower on
CPUs) and ends in a pure-Python non-maximum suppression. This module keeps its weights, its
image pyramid and its box arithmetic (the same helper functions), and replaces those three steps:
all candidate crops of a batch are resampled at once with torchvision's `roi_align` (on
CUDA, and on CPUs for small inputs such as FER2013's); larger CPU inputs stay uint8 Pillow
images, and every pyramid level (box filter: the area mean the reference's
`interpolate(..., mode="area")` computes) and candidate crop (bilinear) is resampled by Pillow
per image on the detector's threads, so no float copy of whole photos is made (converting,
copying and pooling whole float batches of photos cost more than the three networks). The
networks run channels-last, and the final "Min" suppression is vectorised over images.

On CPUs every network call runs single-threaded, in chunks of a fixed size spread over a pool
of threads: results then depend only on the images, not on the number of cores (torch's own
intra-op threads change float rounding with the thread count), so a 2-core laptop, a 64-core
server and each Ray actor give the same boxes and scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image
from torch.nn.functional import affine_grid, avg_pool2d, grid_sample, interpolate

from fer.crop.mtcnn import (
    ONet,
    PNet,
    RNet,
    bbreg,
    generate_bounding_boxes,
    nms,
    rerec,
    roi_align,
)
from fer.device import torch_threads

__all__ = ["Detections", "FaceDetector"]

A = TypeVar("A")
B = TypeVar("B")
_PNET_PIXELS = 1 << 17
"""P-net input pixels per chunk (a fixed size: chunks do not depend on the core count)."""
_ROI_PART = 512
_PILLOW_FROM_PIXELS = 128 * 128
"""CPU detector inputs larger than this go through Pillow image by image (`_Pictures`);
smaller ones (FER2013's 64 px canvases) as one float batch, where per-image Python calls cost
more than the whole-batch copies (`benchmarks/crop_fer2013.py`: 278-287 img/s through Pillow,
312-321 as a batch; `benchmarks/crop_sizes.py`: at 128 px the two are even)."""


@dataclass(frozen=True)
class Detections:
    """Faces found in a batch: one row per face, `image` says which image it belongs to."""

    image: np.ndarray  # (n,) int64
    boxes: np.ndarray  # (n, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (n,) float32
    landmarks: np.ndarray  # (n, 5, 2) float32: left eye, right eye, nose, mouth left, mouth right


class FaceDetector:
    """MTCNN (P-, R-, O-net) over batches of equal-size RGB uint8 images.

    With `merge_iou`, the candidates given to the R-net (the P-net's regressed boxes) and to
    the O-net (the R-net's) that overlap more than that are first merged into one, their
    score-weighted mean (`merged`): once regressed, most of them are near-copies of one face
    box (at 256 px about 27 R-net and 5 O-net candidates per photo, for 1.1 faces). An image left without a face scoring `confident` is detected
    again on all its candidates, as MTCNN does: every image either has a confident face or
    MTCNN's own detections."""

    def __init__(
        self,
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        device: str | torch.device = "cpu",
        merge_iou: float | None = None,
        confident: float = 0.9,
    ) -> None:
        self.min_face_size = min_face_size
        self.thresholds = thresholds
        self.factor = factor
        self.merge_iou, self.confident = merge_iou, confident
        self.device = torch.device(device)
        self._threads = max(1, torch.get_num_threads())
        cpu_pool = self.device.type == "cpu" and self._threads > 1
        self._pool = ThreadPoolExecutor(self._threads) if cpu_pool else None
        self.pnet, self.rnet, self.onet = (
            net.eval().to(self.device, memory_format=torch.channels_last)
            for net in (PNet(), RNet(), ONet())
        )

    @torch.inference_mode()
    def detect(
        self, images: np.ndarray | torch.Tensor, min_face_size: float | None = None
    ) -> Detections:
        """Detect faces in a (B, H, W, 3) uint8 batch; `min_face_size` (pixels) overrides the
        detector's for this batch: the pyramid starts where such a face is 12 pixels."""
        with self._single_threaded():
            levels = self._levels(images)
            boxes, inds = self._stage_one(levels, min_face_size or self.min_face_size)
            if self.merge_iou is None:
                return self._refined(levels, boxes, inds, None)
            found = self._refined(levels, boxes, inds, self.merge_iou)
            sure = np.zeros(levels.shape[0], bool)
            sure[found.image[found.scores >= self.confident]] = True
            again = ~torch.from_numpy(sure).to(inds.device)[inds]
            if not again.any():
                return found
            redone = self._refined(levels, boxes[again], inds[again], None)
        return _joined(found, sure[found.image], redone)

    def _refined(
        self,
        levels: _Levels | _Pictures,
        boxes: torch.Tensor,
        inds: torch.Tensor,
        merge_iou: float | None,
    ) -> Detections:
        """Stage one's candidates through the R- and O-net; with `merge_iou`, the boxes each
        net is given are first merged (`merged`: IoU NMS, then each kept box the score-weighted
        mean of those that overlap it)."""
        if merge_iou is not None and len(boxes):
            boxes, inds = merged(boxes, inds, merge_iou)
        if len(boxes):
            boxes, inds = self._stage_two(levels, boxes, inds)
        if merge_iou is not None and len(boxes):
            boxes, inds = merged(boxes, inds, merge_iou)
        if len(boxes):
            return self._stage_three(levels, boxes, inds)
        return Detections(
            np.zeros(0, np.int64),
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros((0, 5, 2), np.float32),
        )

    @torch.inference_mode()
    def score_boxes(
        self, images: np.ndarray, boxes: np.ndarray, angles: Sequence[float] = (0.0,)
    ) -> np.ndarray:
        """O-net face score of one given box (x1, y1, x2, y2) per image of a (B, H, W, 3)
        uint8 batch: MTCNN's 48x48 face/non-face classifier on a candidate we choose. With
        several `angles` (degrees), the box's 48x48 crop is also scored rotated by each (the
        corners filled grey) and the best score counts: the nets are not rotation-invariant."""
        if len(images) == 0:
            return np.zeros(0, np.float32)
        candidates = torch.as_tensor(np.asarray(boxes, np.float32), device=self.device)
        inds = torch.arange(len(images), device=self.device)
        with self._single_threaded():
            crops, valid = self._crops(self._levels(images), candidates, inds, 48)
            scores = np.zeros(len(images), np.float32)
            if not len(crops):
                return scores
            views = _rotated(crops, angles)
            _, _, probs = self._chunked(self.onet, views, 64)
        best = probs[:, 1].reshape(len(angles), len(crops)).amax(dim=0)
        scores[valid.cpu().numpy()] = best.cpu().numpy()
        return scores

    def _levels(self, images: np.ndarray | torch.Tensor) -> _Levels | _Pictures:
        if self.device.type == "cpu" and images.shape[1] * images.shape[2] > _PILLOW_FROM_PIXELS:
            return _Pictures(np.asarray(images), self._map)
        if isinstance(images, np.ndarray):
            images = np.require(images, requirements=["C", "W"])
        batch = torch.as_tensor(images, device=self.device)
        return _Levels(
            batch.permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)
        )

    @contextmanager
    def _single_threaded(self) -> Iterator[None]:
        """Torch ops single-threaded on CPUs for the duration (the pool gives the parallelism)."""
        if self.device.type != "cpu":
            yield
            return
        with torch_threads(1):
            yield

    def _map(self, fn: Callable[[A], B], items: Sequence[A]) -> list[B]:
        if self._pool is None or len(items) < 2:
            return [fn(item) for item in items]

        def run(item: A) -> B:
            with torch.inference_mode():  # a thread-local mode: each pool thread sets it
                return fn(item)

        return list(self._pool.map(run, items))

    def _chunked(
        self, net: torch.nn.Module, crops: torch.Tensor, size: int
    ) -> tuple[torch.Tensor, ...]:
        # Small chunks keep activations in cache: 2-3x faster than one big batch on CPUs.
        if not len(crops):
            return net(crops)
        outputs = self._map(net, [crops[i : i + size] for i in range(0, len(crops), size)])
        return tuple(torch.cat(parts) for parts in zip(*outputs, strict=True))

    def _scales(self, height: int, width: int, min_face_size: float) -> list[float]:
        scale = 12.0 / min_face_size
        min_side = min(height, width) * scale
        scales = []
        while min_side >= 12:
            scales.append(scale)
            scale *= self.factor
            min_side *= self.factor
        return scales

    def _stage_one(
        self, levels: _Levels | _Pictures, min_face_size: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = levels.shape[2:]
        all_boxes, all_inds = [], []
        for scale in self._scales(height, width, min_face_size):
            size = (int(height * scale + 1), int(width * scale + 1))
            reg, probs = self._pnet_level(levels, size)
            boxes, inds = generate_bounding_boxes(
                reg.contiguous(), probs[:, 1].contiguous(), scale, self.thresholds[0]
            )
            pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.5)
            all_boxes.append(boxes[pick])
            all_inds.append(inds[pick])
        if not all_boxes:
            return torch.zeros(0, 5, device=self.device), torch.zeros(0, dtype=torch.long)
        boxes, inds = torch.cat(all_boxes), torch.cat(all_inds)
        pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
        boxes, inds = boxes[pick], inds[pick]
        width_, height_ = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        refined = torch.stack(
            [
                boxes[:, 0] + boxes[:, 5] * width_,
                boxes[:, 1] + boxes[:, 6] * height_,
                boxes[:, 2] + boxes[:, 7] * width_,
                boxes[:, 3] + boxes[:, 8] * height_,
                boxes[:, 4],
            ],
            dim=1,
        )
        return rerec(refined), inds

    def _pnet_level(
        self, levels: _Levels | _Pictures, size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """P-net outputs on the batch area-resized to `size` (h, w)."""

        def pnet(resized: torch.Tensor) -> tuple[torch.Tensor, ...]:
            normalised = (resized - 127.5) * 0.0078125
            return self.pnet(normalised.contiguous(memory_format=torch.channels_last))

        if isinstance(levels, _Pictures):
            step = max(1, _PNET_PIXELS // (size[0] * size[1]))
            parts = [range(i, min(i + step, len(levels))) for i in range(0, len(levels), step)]
            outputs = self._map(lambda part: pnet(levels.resized(part, size)), parts)
            return tuple(torch.cat(p) for p in zip(*outputs, strict=True))
        # Area-resized from the finest 2^-k level at least this size: the same average over
        # the same pixels (up to the level's grid), a fraction of the reads.
        coarse = levels.coarsest_above(size)
        batch = levels.original if coarse == 0 else levels.level(coarse)
        if self.device.type != "cpu":
            return pnet(interpolate(batch, size=size, mode="area"))
        step = max(1, _PNET_PIXELS // (size[0] * size[1]))
        parts = [batch[i : i + step] for i in range(0, len(batch), step)]
        outputs = self._map(lambda part: pnet(interpolate(part, size=size, mode="area")), parts)
        return tuple(torch.cat(p) for p in zip(*outputs, strict=True))

    def _crops(
        self, levels: _Levels | _Pictures, boxes: torch.Tensor, inds: torch.Tensor, side: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised side x side crops of each box, clipped to the image as the reference does."""
        height, width = levels.shape[2:]
        # The reference's `pad`: truncate, then clip to 1-based [1, w] x [1, h].
        truncated = boxes[:, :4].trunc()
        x1 = truncated[:, 0].clamp(min=1) - 1
        y1 = truncated[:, 1].clamp(min=1) - 1
        x2 = truncated[:, 2].clamp(max=width)
        y2 = truncated[:, 3].clamp(max=height)
        valid = (x2 > x1) & (y2 > y1)
        rois = torch.stack([inds.to(torch.float32), x1, y1, x2, y2], dim=1)[valid]
        if isinstance(levels, _Pictures):
            crops = levels.crops(rois, side)
        else:
            crops = self._roi_align(levels, rois, side)
        crops = (crops - 127.5) * 0.0078125
        return crops.contiguous(memory_format=torch.channels_last), valid

    def _roi_align(self, levels: _Levels, rois: torch.Tensor, side: int) -> torch.Tensor:
        """roi_align averages ceil(box / side)^2 samples per output pixel, so a large box costs
        its area: a box at least 2^(k+1) times the output is read from the 2^-k level instead
        (each of its pixels already the mean of 2^k x 2^k), at a 4^k-th of the cost."""
        extent = torch.maximum(rois[:, 3] - rois[:, 1], rois[:, 4] - rois[:, 2])
        ratio = (extent / (2 * side)).clamp(min=1)
        chosen = torch.floor(torch.log2(ratio)).long().clamp(max=levels.deepest(side))
        out = torch.empty((len(rois), levels.shape[1], side, side), device=rois.device)
        for k in torch.unique(chosen).tolist():
            where = torch.nonzero(chosen == k).flatten()
            part = rois[where]
            if k:
                part = torch.cat([part[:, :1], part[:, 1:] / 2**k], dim=1)
            out[where] = self._roi_align_level(levels.level(k), part, side)
        return out

    def _roi_align_level(self, image: torch.Tensor, rois: torch.Tensor, side: int) -> torch.Tensor:
        def align(part: torch.Tensor) -> torch.Tensor:
            return roi_align(image, part, side)

        # torchvision's CPU roi_align uses one thread; split the boxes across the cores.
        if self.device.type != "cpu" or len(rois) <= _ROI_PART:
            return align(rois)
        return torch.cat(self._map(align, list(torch.split(rois, _ROI_PART))))

    def _stage_two(
        self, levels: _Levels | _Pictures, boxes: torch.Tensor, inds: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        crops, valid = self._crops(levels, boxes, inds, 24)
        boxes, inds = boxes[valid], inds[valid]
        reg, probs = self._chunked(self.rnet, crops, 256)
        score = probs[:, 1]
        keep = score > self.thresholds[1]
        boxes = torch.cat([boxes[keep, :4], score[keep, None]], dim=1)
        inds, reg = inds[keep], reg[keep]
        pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
        boxes, inds, reg = boxes[pick], inds[pick], reg[pick]
        return rerec(bbreg(boxes, reg)), inds

    def _stage_three(
        self, levels: _Levels | _Pictures, boxes: torch.Tensor, inds: torch.Tensor
    ) -> Detections:
        crops, valid = self._crops(levels, boxes, inds, 48)
        boxes, inds = boxes[valid], inds[valid]
        reg, points, probs = self._chunked(self.onet, crops, 64)
        score = probs[:, 1]
        keep = score > self.thresholds[2]
        boxes = torch.cat([boxes[keep, :4], score[keep, None]], dim=1)
        inds, reg, points = inds[keep], reg[keep], points[keep]
        box_w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        box_h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        landmarks = torch.stack(
            [
                box_w * points[:, :5] + boxes[:, 0:1] - 1,
                box_h * points[:, 5:10] + boxes[:, 1:2] - 1,
            ],
            dim=2,
        )
        boxes = bbreg(boxes, reg)
        pick = nms_min(boxes[:, :4], boxes[:, 4], inds, 0.7)
        boxes, inds, landmarks = boxes[pick], inds[pick], landmarks[pick]
        order = torch.argsort(inds * 2.0 - boxes[:, 4], stable=True)  # by image, best score first
        boxes, inds, landmarks = boxes[order], inds[order], landmarks[order]
        return Detections(
            inds.cpu().numpy().astype(np.int64),
            boxes[:, :4].cpu().numpy().astype(np.float32),
            boxes[:, 4].cpu().numpy().astype(np.float32),
            landmarks.cpu().numpy().astype(np.float32),
        )


class _Pictures:
    """A CPU batch as uint8 RGB Pillow images, resampled by Pillow image by image on the
    detector's threads (it releases the GIL): P-net inputs by box filter (the area mean the
    reference computes), candidate crops bilinearly (as roi_align samples them; a box filter
    there, nearest-neighbour when a small face is enlarged to 48 px, kept 1 % fewer FER2013
    faces)."""

    def __init__(self, images: np.ndarray, map_: Callable[..., list[Any]]) -> None:
        self.shape = (len(images), 3, *images.shape[1:3])
        self._pictures = [Image.fromarray(np.ascontiguousarray(image), "RGB") for image in images]
        self._map = map_
        self._made: list[list[Image.Image]] = [[] for _ in images]

    def __len__(self) -> int:
        return len(self._pictures)

    def resized(self, part: range, size: tuple[int, int]) -> torch.Tensor:
        """Images `part` box-resized to `size` (h, w): float (k, 3, h, w), channels-last.

        Each is resampled from the smallest level made so far that is at least twice `size`
        on both sides, else from the image reduced by a whole factor (a k x k mean, kept as
        a level) to at least that: the levels of a pyramid get cheaper as they shrink, and the
        full-size image is read once, at the cost of averaging averages where the ratio is not
        a whole number."""
        arrays = []
        for i in part:
            made = self._made[i]
            source = next(
                (p for p in reversed(made) if p.width >= 2 * size[1] and p.height >= 2 * size[0]),
                None,
            )
            if source is None:
                source = self._pictures[i]
                factor = min(source.width // (2 * size[1]), source.height // (2 * size[0]))
                if factor >= 2:
                    source = source.reduce(factor)
                    made.append(source)
            level = source.resize((size[1], size[0]), Image.Resampling.BOX)
            made.append(level)
            arrays.append(np.asarray(level))
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()

    def crops(self, rois: torch.Tensor, side: int) -> torch.Tensor:
        """side x side crops of rois (image, x1, y1, x2, y2), float (n, 3, s, s)."""
        out = np.empty((len(rois), side, side, 3), np.uint8)
        table = rois.numpy()
        order = np.argsort(table[:, 0], kind="stable")
        bounds = np.flatnonzero(np.diff(table[order, 0])) + 1
        groups = np.split(order, bounds)

        def cut(rows: np.ndarray) -> None:
            picture = self._pictures[int(table[rows[0], 0])]
            for row in rows:
                box = tuple(float(v) for v in table[row, 1:])
                out[row] = np.asarray(
                    picture.resize((side, side), Image.Resampling.BILINEAR, box=box)
                )

        self._map(cut, [g for g in groups if len(g)])
        return torch.from_numpy(out).permute(0, 3, 1, 2).float()


class _Levels:
    """A batch (n, 3, h, w) and its 2x2-mean levels, each made once, when first asked for."""

    def __init__(self, batch: torch.Tensor) -> None:
        self.shape, self.original = batch.shape, batch
        self._levels = [batch.contiguous()]  # roi_align reads channels-first

    def level(self, k: int) -> torch.Tensor:
        while len(self._levels) <= k:
            self._levels.append(avg_pool2d(self._levels[-1], 2, ceil_mode=True))
        return self._levels[k]

    def deepest(self, side: int) -> int:
        """The coarsest level still at least `side` pixels on its shorter side."""
        return max(0, math.floor(math.log2(max(1.0, min(self.shape[2:]) / side))))

    def coarsest_above(self, size: tuple[int, int]) -> int:
        """The coarsest level at least `size` (h, w)."""
        ratio = min(self.shape[2] / size[0], self.shape[3] / size[1])
        return max(0, math.floor(math.log2(max(1.0, ratio))))


def _joined(first: Detections, keep: np.ndarray, second: Detections) -> Detections:
    """The rows of `first` where `keep`, and all of `second` (other images), by image."""
    image = np.concatenate([first.image[keep], second.image])
    order = np.argsort(image, kind="stable")  # each image's rows stay best score first
    return Detections(
        image[order],
        np.concatenate([first.boxes[keep], second.boxes])[order],
        np.concatenate([first.scores[keep], second.scores])[order],
        np.concatenate([first.landmarks[keep], second.landmarks])[order],
    )


def _rotated(crops: torch.Tensor, angles: Sequence[float]) -> torch.Tensor:
    """Normalised crops (n, 3, s, s) rotated about their centre by each angle, angle-major;
    pixels from outside the crop are 0 (grey, once normalised)."""
    views = []
    for angle in angles:
        if angle == 0:
            views.append(crops)
            continue
        theta = math.radians(angle)
        cos, sin = math.cos(theta), math.sin(theta)
        affine = torch.tensor(
            [[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=crops.dtype, device=crops.device
        ).expand(len(crops), 2, 3)
        grid = affine_grid(affine, list(crops.shape), align_corners=False)
        rotated = grid_sample(crops, grid, mode="bilinear", align_corners=False)
        views.append(rotated.contiguous(memory_format=torch.channels_last))
    return torch.cat(views)


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, inds: torch.Tensor, threshold: float
) -> torch.Tensor:
    """IoU NMS per image in one call: boxes of different images are shifted apart so they
    never overlap (torchvision's own trick, which it skips for large inputs on CPU)."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    offsets = inds.to(boxes) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, threshold)


_VOTE_CELLS = 1 << 20
"""Kept boxes x candidates compared per chunk of images in `merged` (each float32 matrix 4 MB,
the candidates' coordinates 20 MB at most)."""


def merged(
    boxes: torch.Tensor, inds: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU NMS per image, each kept box replaced by the score-weighted mean of the boxes that
    overlap it more than `threshold` (itself included; box voting): the mean moves a little
    when the pixels do, where the best-scored box of a cluster can jump to another one."""
    pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, threshold)
    order = torch.argsort(inds, stable=True)
    sorted_inds = inds[order]
    images, counts = torch.unique_consecutive(sorted_inds, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(order), device=boxes.device) - torch.repeat_interleave(starts, counts)
    position = torch.empty_like(order)
    position[order] = slot
    group_of = torch.zeros(int(inds.max()) + 1, dtype=torch.long, device=boxes.device)
    group_of[images] = torch.arange(len(images), device=boxes.device)
    voted = boxes[pick].clone()
    k = int(counts.max())
    step = max(1, _VOTE_CELLS // (k * k))
    kept_group = group_of[inds[pick]]
    for first in range(0, len(images), step):
        last = min(len(images), first + step)
        rows = (group_of[inds] >= first) & (group_of[inds] < last)
        padded = torch.zeros(last - first, k, 5, dtype=boxes.dtype, device=boxes.device)
        padded[group_of[inds[rows]] - first, position[rows]] = boxes[rows]
        mine = (kept_group >= first) & (kept_group < last)
        centre = boxes[pick[mine], None, :4]  # (m, 1, 4)
        others = padded[kept_group[mine] - first]  # (m, k, 5)
        x1 = torch.maximum(centre[..., 0], others[..., 0])
        y1 = torch.maximum(centre[..., 1], others[..., 1])
        x2 = torch.minimum(centre[..., 2], others[..., 2])
        y2 = torch.minimum(centre[..., 3], others[..., 3])
        inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
        area_c = (centre[..., 2] - centre[..., 0]) * (centre[..., 3] - centre[..., 1])
        area_o = (others[..., 2] - others[..., 0]) * (others[..., 3] - others[..., 1])
        iou = inter / (area_c + area_o - inter).clamp(min=1e-9)
        weight = torch.where(iou > threshold, others[..., 4], 0.0)
        total = weight.sum(dim=1, keepdim=True)
        mean = (weight[..., None] * others[..., :4]).sum(dim=1) / total
        voted[mine, :4] = torch.where(total > 0, mean, voted[mine, :4])
    return voted, inds[pick]


def nms_min(
    boxes: torch.Tensor, scores: torch.Tensor, inds: torch.Tensor, threshold: float
) -> torch.Tensor:
    """Greedy NMS per image where overlap = intersection / smaller area (MTCNN's 'Min').

    Boxes of each image are ranked by score and laid out in a (images, K, K) overlap tensor,
    so the greedy pass takes K vectorised steps, K being the most boxes any image has.
    """
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    order = order[torch.argsort(inds[order], stable=True)]
    sorted_inds = inds[order]
    _, counts = torch.unique_consecutive(sorted_inds, return_counts=True)
    groups, k = len(counts), int(counts.max())
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(order), device=boxes.device) - torch.repeat_interleave(starts, counts)
    group = torch.repeat_interleave(torch.arange(groups, device=boxes.device), counts)
    padded = torch.zeros(groups, k, 4, dtype=boxes.dtype, device=boxes.device)
    present = torch.zeros(groups, k, dtype=torch.bool, device=boxes.device)
    padded[group, rank] = boxes[order]
    present[group, rank] = True
    x1, y1, x2, y2 = padded.unbind(-1)
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    inter_w = (
        torch.minimum(x2[:, :, None], x2[:, None]) - torch.maximum(x1[:, :, None], x1[:, None]) + 1
    ).clamp(min=0)
    inter_h = (
        torch.minimum(y2[:, :, None], y2[:, None]) - torch.maximum(y1[:, :, None], y1[:, None]) + 1
    ).clamp(min=0)
    overlap = inter_w * inter_h / torch.minimum(area[:, :, None], area[:, None])
    keep = present.clone()
    later = torch.triu(torch.ones(k, k, dtype=torch.bool, device=boxes.device), diagonal=1)
    for r in range(k):
        suppress = keep[:, r : r + 1] & (overlap[:, r] > threshold) & later[r]
        keep &= ~suppress
    return order[keep[group, rank]]
