"""Decode, validate and normalise image bytes into what every later stage can rely on.

A stored image is 8-bit grayscale (`L`) or RGB, upright, single-frame, JPEG or PNG. Bytes that
already are that are kept untouched (no re-encoding loss); anything else is normalised and
re-encoded as lossless PNG, with a note saying what was done.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from isal import isal_zlib
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["Rejection", "StoredImage", "decode_grey", "encode_png", "load_image", "pixel_hash"]

_EXIF_ORIENTATION = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_MODES = {0: "L", 2: "RGB"}  # 8-bit grey and RGB colour types
_KEEP_FORMATS = {"JPEG", "PNG"}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)


@dataclass(frozen=True)
class StoredImage:
    """Encoded bytes ready to store, with their geometry and what normalisation did."""

    data: bytes
    width: int
    height: int
    channels: int
    notes: tuple[str, ...] = ()
    pixel_hash: str = ""
    """Digest of the decoded pixels (with size and mode): equal means identical pixels."""


@dataclass(frozen=True)
class Rejection:
    """Why an input row or file was refused: a short reason code and a human detail."""

    reason: str
    detail: str


def pixel_hash(pixels: np.ndarray) -> str:
    """Hex digest of decoded uint8 pixels and their shape; the exact-duplicate key."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels, dtype=np.uint8).data)  # no copy of the pixels
    return digest.hexdigest()


def decode_grey(data: bytes) -> Image.Image:
    """Stored image bytes (as `load_image` keeps them) decoded to 8-bit grey ("L").

    The PNGs the stages write (8-bit grey or RGB, not interlaced) go straight to Pillow's
    own zlib/PNG decoder, skipping its chunk-by-chunk file parsing (48 vs 79 us for a FER2013
    frame, the same pixels); anything else is opened the usual way.
    """
    image = _decode_png(data) if data.startswith(_PNG_SIGNATURE) else None
    if image is None:
        with Image.open(io.BytesIO(data)) as opened:
            return opened.convert("L")
    return image if image.mode == "L" else image.convert("L")


def _decode_png(data: bytes) -> Image.Image | None:
    position, mode, size, compressed = 8, None, (0, 0), []
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(
                ">IIBBBBB", data[position + 8 : position + 21]
            )
            mode = _PNG_MODES.get(colour) if depth == 8 and not interlace else None
            if mode is None:
                return None
            size = (width, height)
        elif kind == b"IDAT":
            compressed.append(data[position + 8 : position + 8 + length])
        elif kind == b"IEND":
            break
        position += 12 + length
    if mode is None or not compressed:
        return None
    return Image.frombytes(mode, size, b"".join(compressed), "zip", mode)


def encode_png(pixels: np.ndarray) -> bytes:
    """Lossless PNG of a uint8 HxW (grayscale) or HxWx3 (RGB) array."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or pixels.shape[2:] not in ((), (3,)):
        raise ValueError(
            f"encode_png takes uint8 HxW or HxWx3 pixels, not {pixels.dtype} {pixels.shape}"
        )
    height, width = pixels.shape[:2]
    rows = np.ascontiguousarray(pixels).reshape(height, -1)
    # Every row PNG's "Up" filter (the difference to the row above, mod 256), then ISA-L's
    # deflate at level 1: ~7x faster than Pillow (adaptive filters, zlib level 1) for 1.6 %
    # more bytes (benchmarks/png_encode.py). ISA-L gives the same bytes on every x86-64 CPU
    # with SSE4.2 (AVX2 or not).
    filtered = np.empty((height, rows.shape[1] + 1), np.uint8)
    filtered[:, 0] = 2
    filtered[:1, 1:] = rows[:1]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if pixels.ndim == 2 else 2, 0, 0, 0)
    return b"".join(
        (
            _PNG_SIGNATURE,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", isal_zlib.compress(filtered.data, 1)),
            _png_chunk(b"IEND", b""),
        )
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def load_image(data: bytes, max_pixels: int) -> StoredImage | Rejection:
    """Validate image bytes and normalise mode and orientation; never raises on bad input."""
    if not data:
        return Rejection("empty_file", "the file has zero bytes")
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check below is the limit that counts.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        return Rejection("decompression_bomb", str(exc))
    except UnidentifiedImageError:
        return Rejection("not_an_image", "not a format Pillow can read")
    except _DECODE_ERRORS as exc:
        return Rejection("corrupt_image", f"unreadable header: {exc}")
    width, height = image.size
    if width * height > max_pixels:
        return Rejection(
            "decompression_bomb",
            f"{width}x{height} = {width * height} pixels exceeds ingest.max_image_pixels={max_pixels}",
        )
    if width == 0 or height == 0:
        return Rejection("corrupt_image", f"empty image size {width}x{height}")
    try:
        image.load()
    except _DECODE_ERRORS as exc:
        if "ghostscript" in str(exc).lower():
            return Rejection(
                "unsupported_format",
                f"{image.format} needs Ghostscript to render; convert it to PNG first",
            )
        reason = "truncated_image" if "truncated" in str(exc).lower() else "corrupt_image"
        return Rejection(reason, str(exc))
    if image.mode == "F" and not np.isfinite(np.asarray(image)).all():
        return Rejection("non_finite_pixels", "float image holds NaN or infinite values")
    return _normalise(image, data)


def _normalise(image: Image.Image, data: bytes) -> StoredImage | Rejection:
    notes: list[str] = []
    source_format = image.format
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        notes.append(f"first_of_{frames}_frames")
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except _DECODE_ERRORS:
        orientation = 1
        notes.append("exif_unreadable")
    if orientation not in (1, None):
        try:
            image = ImageOps.exif_transpose(image)
        except _DECODE_ERRORS as exc:
            return Rejection(
                "corrupt_image", f"EXIF orientation {orientation} not applicable: {exc}"
            )
        notes.append(f"exif_orientation_{orientation}")
    converted = _to_l_or_rgb(image)
    if converted.mode != image.mode:
        notes.append(f"mode_{image.mode}_to_{converted.mode}")
    pixels = np.asarray(converted)
    digest = pixel_hash(pixels)
    if not notes and source_format in _KEEP_FORMATS:
        return StoredImage(data, image.width, image.height, len(image.getbands()), (), digest)
    if source_format not in _KEEP_FORMATS:
        notes.append(f"format_{source_format}_to_PNG")
    return StoredImage(
        encode_png(pixels),
        converted.width,
        converted.height,
        1 if pixels.ndim == 2 else 3,
        tuple(notes),
        digest,
    )


def _to_l_or_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I;16") or mode == "I":
        # 16-bit grayscale: map 0..65535 onto 0..255 exactly (255 * 257 == 65535).
        wide = np.asarray(image, dtype=np.int64)
        return Image.fromarray((np.clip(wide, 0, 65535) // 257).astype(np.uint8), mode="L")
    if mode == "F":
        return Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), mode="L")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        # Transparent pixels carry arbitrary colour: composite on white, as viewers show them.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flat = Image.alpha_composite(background, rgba)
        return flat.convert("L" if mode in ("LA", "La") else "RGB")
    return image.convert("RGB")
