"""Models for 7-class expression recognition, built on timm with random weights by default.

`swin_se_resnet` is the seed report's two-branch hybrid: a Swin-Tiny branch whose feature map
goes through a squeeze-and-excitation block, a grouped ("split") convolution and mean pooling,
and a ResNet-50 branch with global average pooling; the two vectors are concatenated and a
fully connected layer gives the logits. `resemotenet` follows the ResEmoteNet paper (Roy et al.,
2024): a convolutional stem, an SE block, residual blocks and adaptive average pooling. Any other
name is passed to `timm.create_model` (e.g. `resnet50`, `swin_tiny_patch4_window7_224`,
`resnet18`).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MODEL_NAMES", "ResEmoteNet", "SEBlock", "SwinSEResNet", "build_model"]

MODEL_NAMES = ("swin_se_resnet", "resnet50", "swin_tiny_patch4_window7_224", "resemotenet")
_SWIN = "swin_tiny_patch4_window7_224"


class SEBlock(nn.Module):
    """Squeeze-and-excitation over the channels of an NCHW map."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


def _swin(image_size: int, **kwargs: object) -> nn.Module:
    import timm

    if image_size % 32:
        raise ValueError(f"Swin needs an image size divisible by 32, got {image_size}")
    window = 7 if image_size == 224 else max(1, image_size // 16)
    return timm.create_model(
        _SWIN, pretrained=False, img_size=image_size, window_size=window, **kwargs
    )


class SwinSEResNet(nn.Module):
    """Swin-Tiny -> SE -> grouped conv -> mean pool, ResNet-50 -> GAP; concat -> FC."""

    def __init__(self, num_classes: int = 7, image_size: int = 224, groups: int = 4) -> None:
        import timm

        super().__init__()
        self.swin = _swin(image_size, num_classes=0)
        channels = self.swin.num_features
        self.se = SEBlock(channels)
        self.split_conv = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=groups, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.resnet = timm.create_model("resnet50", pretrained=False, num_classes=0)
        self.head = nn.Linear(channels + self.resnet.num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.swin.forward_features(x)  # (B, H, W, C)
        swin = self.split_conv(self.se(tokens.permute(0, 3, 1, 2))).mean(dim=(2, 3))
        return self.head(torch.cat([swin, self.resnet(x)], dim=1))


class _Residual(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int = 2) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False),
            nn.BatchNorm2d(outputs),
            nn.ReLU(inplace=True),
            nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False),
            nn.BatchNorm2d(outputs),
        )
        self.skip = nn.Sequential(
            nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ResEmoteNet(nn.Module):
    """ResEmoteNet: conv stem (64-128-256), SE, residual blocks (512-1024-2048), adaptive
    average pooling, then fully connected layers with dropout."""

    def __init__(self, num_classes: int = 7, width: int = 64) -> None:
        super().__init__()

        def conv(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(i, o, 3, padding=1, bias=False),
                nn.BatchNorm2d(o),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.stem = nn.Sequential(
            conv(3, width), conv(width, 2 * width), conv(2 * width, 4 * width)
        )
        self.se = SEBlock(4 * width)
        self.residual = nn.Sequential(
            _Residual(4 * width, 8 * width),
            _Residual(8 * width, 16 * width),
            _Residual(16 * width, 32 * width),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * width, 16 * width),
            nn.ReLU(inplace=True),
            nn.Dropout(0.2),
            nn.Linear(16 * width, 8 * width),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(8 * width, 4 * width),
            nn.ReLU(inplace=True),
            nn.Linear(4 * width, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.residual(self.se(self.stem(x)))))


def build_model(name: str, num_classes: int = 7, image_size: int = 224) -> nn.Module:
    """A model by name, with random weights (load a local checkpoint separately)."""
    if name == "swin_se_resnet":
        return SwinSEResNet(num_classes, image_size)
    if name == "resemotenet":
        return ResEmoteNet(num_classes)
    if name == _SWIN:
        return _swin(image_size, num_classes=num_classes)
    import timm

    if name not in timm.list_models():
        raise ValueError(
            f"unknown model {name!r}: use {', '.join(MODEL_NAMES)} or a timm model name"
        )
    return timm.create_model(name, pretrained=False, num_classes=num_classes)
