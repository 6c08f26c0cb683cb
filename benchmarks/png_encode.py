"""Benchmark: fer-data's PNG encoder against Pillow's on a face-crop-sized RGB image.

usage: python benchmarks/png_encode.py [--side 270] [--repeats 200]

Encodes skimage's astronaut resized to SIDE x SIDE with `fer.images.encode_png` (Up filter,
ISA-L deflate level 1) and with Pillow (adaptive filters, zlib level 1, what fer-data used
before), and prints ms per image and bytes of each; checks that both decode to the pixels.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from PIL import Image
from skimage import data

from fer.images import encode_png


def pillow_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", type=int, default=270)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    pixels = np.asarray(Image.fromarray(data.astronaut()).resize((args.side, args.side)))
    for name, encode in (("fer-data", encode_png), ("pillow", pillow_png)):
        encoded = encode(pixels)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(encoded))), pixels)
        start = time.perf_counter()
        for _ in range(args.repeats):
            encode(pixels)
        ms = (time.perf_counter() - start) / args.repeats * 1e3
        print(f"{name:9s} {ms:6.2f} ms  {len(encoded):8,d} bytes")


if __name__ == "__main__":
    main()
