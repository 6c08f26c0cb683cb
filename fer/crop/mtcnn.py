"""MTCNN's three networks and box arithmetic as facenet-pytorch 2.5.3 defines them (MIT), with
its weights, and torchvision's compiled `nms` / `roi_align`, all without importing either
package's Python code.

Importing `facenet_pytorch` imports `torchvision`, whose `ops.roi_align` imports TorchDynamo:
about 1,000 more modules, 164 MB of resident memory and 1.3-1.8 s in every process that crops
(README, "Face re-cropping"). The layers and arithmetic below are the reference's, op for op, so the
outputs are the same bits (`tests/test_crop.py` compares them with facenet-pytorch's); the
weights are read from the installed facenet-pytorch, and the two box operators come from
torchvision's compiled library, loaded on first use (falling back to its Python package when
the library is not where this torchvision keeps it).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from functools import cache
from pathlib import Path

import torch
from torch import nn

from fer.errors import FerDataError

__all__ = [
    "ONet",
    "PNet",
    "RNet",
    "bbreg",
    "generate_bounding_boxes",
    "nms",
    "rerec",
    "roi_align",
]


class PNet(nn.Module):
    """Proposal net: a fully convolutional 12x12 face/non-face scorer with box offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.softmax4_1 = nn.Softmax(dim=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)
        _load_weights(self, "pnet")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.prelu1(self.conv1(x))
        x = self.pool1(x)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return self.conv4_2(x), self.softmax4_1(self.conv4_1(x))


class RNet(nn.Module):
    """Refinement net: 24x24 candidates, face score and box offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.softmax5_1 = nn.Softmax(dim=1)
        self.dense5_2 = nn.Linear(128, 4)
        _load_weights(self, "rnet")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), self.softmax5_1(self.dense5_1(x))


class ONet(nn.Module):
    """Output net: 48x48 candidates, face score, box offsets and five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.softmax6_1 = nn.Softmax(dim=1)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)
        _load_weights(self, "onet")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), self.softmax6_1(self.dense6_1(x))


def _load_weights(net: nn.Module, name: str) -> None:
    spec = importlib.util.find_spec("facenet_pytorch")  # finds the package, runs none of it
    folders = spec.submodule_search_locations if spec is not None else None
    path = Path(next(iter(folders))) / "data" / f"{name}.pt" if folders else None
    if path is None or not path.is_file():
        raise FerDataError(
            f"crop: MTCNN weights {name}.pt not found in the installed facenet-pytorch "
            f"({path or 'package not installed'}); fix: pip install facenet-pytorch==2.5.3"
        )
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    net.eval()


def generate_bounding_boxes(
    reg: torch.Tensor, probs: torch.Tensor, scale: float, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """P-net cells scoring at least `threshold` as boxes (x1, y1, x2, y2, score, 4 offsets) in
    the input's pixels, and the image each belongs to (facenet-pytorch's generateBoundingBox)."""
    stride, cellsize = 2, 12
    reg = reg.permute(1, 0, 2, 3)
    mask = probs >= threshold
    mask_inds = mask.nonzero()
    image_inds = mask_inds[:, 0]
    score = probs[mask]
    reg = reg[:, mask].permute(1, 0)
    cells = mask_inds[:, 1:].type(reg.dtype).flip(1)
    q1 = ((stride * cells + 1) / scale).floor()
    q2 = ((stride * cells + cellsize - 1 + 1) / scale).floor()
    return torch.cat([q1, q2, score.unsqueeze(1), reg], dim=1), image_inds


def bbreg(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    """Boxes moved by the regression offsets (fractions of their side), in place."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    b1 = boxes[:, 0] + reg[:, 0] * w
    b2 = boxes[:, 1] + reg[:, 1] * h
    b3 = boxes[:, 2] + reg[:, 2] * w
    b4 = boxes[:, 3] + reg[:, 3] * h
    boxes[:, :4] = torch.stack([b1, b2, b3, b4]).permute(1, 0)
    return boxes


def rerec(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes made square about their centre (side: the longer one), in place."""
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    side = torch.max(w, h)
    boxes[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    boxes[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, :2] + side.repeat(2, 1).permute(1, 0)
    return boxes


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """torchvision's `nms`: indices of the boxes kept, best score first."""
    if _vision_ops():
        return torch.ops.torchvision.nms(boxes, scores, threshold)
    from torchvision.ops import nms as python_nms

    return python_nms(boxes, scores, threshold)


def roi_align(
    image: torch.Tensor, rois: torch.Tensor, side: int, sampling_ratio: int = -1
) -> torch.Tensor:
    """torchvision's `roi_align(image, rois, (side, side), 1.0, sampling_ratio, aligned=True)`."""
    if _vision_ops():
        return torch.ops.torchvision.roi_align(image, rois, 1.0, side, side, sampling_ratio, True)
    from torchvision.ops import roi_align as python_roi_align

    return python_roi_align(image, rois, (side, side), 1.0, sampling_ratio, aligned=True)


@cache
def _vision_ops() -> bool:
    """Load torchvision's compiled operators (`torch.ops.torchvision.*`) by file, as its own
    `extension` module does; False where they are not found (its Python package then)."""
    spec = importlib.util.find_spec("torchvision")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for name in ("_C_stable", "_C"):  # its name in recent releases, and in older ones
        for folder in folders:
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                path = Path(folder) / f"{name}{suffix}"
                if path.is_file():
                    try:
                        torch.ops.load_library(str(path))
                    except OSError:
                        continue
                    return hasattr(torch.ops.torchvision, "nms")
    return False
