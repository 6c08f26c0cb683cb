"""Benchmark: the MTCNN detector alone (no decoding, cutting or writing) on real photos.

usage: python benchmarks/crop_detector.py PHOTO_FOLDER [--images 32] [--size 427x320]
       [--min-face 48] [--rounds 8]

Takes the first N JPEGs of PHOTO_FOLDER (e.g. a `photos640` folder kept by
`benchmarks/crop_sizes.py --keep DIR`), resizes them to --size, and times
`FaceDetector.detect` on the batch: prints the fastest and the median round in ms per image,
the faces found and the images with a face scoring >= 0.9. Run it against an older checkout
with `PYTHONPATH=OLD_CHECKOUT python benchmarks/crop_detector.py ...` for an A/B.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--size", default="427x320", help="detector input, WIDTHxHEIGHT")
    parser.add_argument("--min-face", type=float, default=48.0, help="pixels at that size")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--nets", action="store_true", help="also time each network per crop")
    args = parser.parse_args()
    if args.nets:
        time_networks()

    from fer.crop.detector import FaceDetector

    width, height = (int(v) for v in args.size.split("x"))
    files = sorted(Path(args.folder).rglob("*.jpg"))[: args.images]
    batch = np.stack(
        [np.asarray(Image.open(f).convert("RGB").resize((width, height))) for f in files]
    )
    detector = FaceDetector()
    detector.detect(batch, args.min_face)  # warm-up: oneDNN primitives, thread pool
    times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        found = detector.detect(batch, args.min_face)
        times.append(time.perf_counter() - start)
    per_image = np.array(times) / len(batch) * 1000
    faces = len(set(found.image[found.scores >= 0.9].tolist()))
    print(
        f"{len(batch)} photos at {width}x{height}, min face {args.min_face:g} px: "
        f"{per_image.min():.2f} ms/image fastest, {np.median(per_image):.2f} median; "
        f"{len(found.image)} faces, {faces} images with a face >= 0.9"
    )


def time_networks() -> None:
    """Milliseconds per input of each MTCNN network, one thread, channels-last, chunks of 64."""
    import torch
    from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

    torch.set_num_threads(1)
    for name, net, side in (("P-net", PNet(), 107), ("R-net", RNet(), 24), ("O-net", ONet(), 48)):
        net = net.eval().to(memory_format=torch.channels_last)
        inputs = torch.randn(64, 3, side, side).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            net(inputs)
            start = time.perf_counter()
            for _ in range(10):
                net(inputs)
        ms = (time.perf_counter() - start) / 10 / 64 * 1000
        print(f"{name}: {ms:.3f} ms per {side}x{side} input, one thread")


if __name__ == "__main__":
    main()
