from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fer.images import Rejection, StoredImage, decode_grey, encode_png, load_image
from fer.sample import _bomb_png
from tests.conftest import encode, face_like

LIMIT = 4_000_000


def _decode(stored: StoredImage) -> Image.Image:
    image = Image.open(io.BytesIO(stored.data))
    image.load()
    return image


def _rgb_face(side: int = 64) -> Image.Image:
    gray = face_like(side)
    return Image.fromarray(np.stack([gray, gray // 2 + 40, 255 - gray], axis=-1))


def test_plain_jpeg_and_png_are_kept_byte_for_byte():
    for payload in (encode(_rgb_face()), encode(Image.fromarray(face_like()), "PNG")):
        stored = load_image(payload, LIMIT)
        assert isinstance(stored, StoredImage)
        assert stored.data == payload and stored.notes == ()


def test_grayscale_stays_one_channel():
    stored = load_image(encode(Image.fromarray(face_like(40))), LIMIT)
    assert (stored.width, stored.height, stored.channels) == (40, 40, 1)


@pytest.mark.parametrize(
    ("make", "note", "mode"),
    [
        (lambda im: encode(im.convert("CMYK")), "mode_CMYK_to_RGB", "RGB"),
        (
            lambda im: encode(im.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
            "mode_P_to_RGB",
            "RGB",
        ),
        (lambda im: encode(im.convert("1"), "PNG"), "mode_1_to_L", "L"),
        (lambda im: encode(im.convert("LA"), "PNG"), "mode_LA_to_L", "L"),
        (lambda im: encode(im, "BMP"), "format_BMP_to_PNG", "RGB"),
        (lambda im: encode(im, "WEBP", lossless=True), "format_WEBP_to_PNG", "RGB"),
        (lambda im: encode(im, "TIFF"), "format_TIFF_to_PNG", "RGB"),
    ],
)
def test_other_modes_and_formats_are_normalised_to_png(make, note, mode):
    stored = load_image(make(_rgb_face()), LIMIT)
    assert isinstance(stored, StoredImage), stored
    assert note in stored.notes
    image = _decode(stored)
    assert image.format == "PNG" and image.mode == mode
    assert stored.channels == (1 if mode == "L" else 3)


def test_sixteen_bit_maps_exactly_onto_eight_bit():
    wide = face_like().astype(np.uint16) * 257
    stored = load_image(encode(Image.fromarray(wide), "PNG"), LIMIT)
    assert any(n.startswith("mode_I") for n in stored.notes)
    np.testing.assert_array_equal(np.asarray(_decode(stored)), face_like())


def test_rgba_is_composited_on_white():
    face = _rgb_face().convert("RGBA")
    mask = Image.new("L", face.size, 0)
    ImageDraw.Draw(mask).ellipse((8, 8, 56, 56), fill=255)
    face.putalpha(mask)
    stored = load_image(encode(face, "PNG"), LIMIT)
    pixels = np.asarray(_decode(stored))
    assert "mode_RGBA_to_RGB" in stored.notes
    assert pixels.shape == (64, 64, 3)
    assert (pixels[0, 0] == 255).all(), "transparent corner must be white"
    np.testing.assert_array_equal(pixels[32, 32], np.asarray(_rgb_face())[32, 32])


def test_exif_orientation_is_applied():
    upright = Image.fromarray(
        np.pad(face_like(40), ((0, 0), (0, 24)), constant_values=255)
    )  # 64 wide, 40 tall
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    stored_pixels = upright.transpose(Image.Transpose.ROTATE_90)
    stored = load_image(encode(stored_pixels, "PNG", exif=exif.tobytes()), LIMIT)
    assert "exif_orientation_6" in stored.notes
    assert (stored.width, stored.height) == (64, 40)
    np.testing.assert_array_equal(np.asarray(_decode(stored)), np.asarray(upright))


def test_multi_frame_keeps_the_first_frame():
    frames = [Image.fromarray(face_like(32, seed=s)) for s in range(3)]
    payload = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    stored = load_image(payload, LIMIT)
    assert "first_of_3_frames" in stored.notes


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty_file"),
        (b"Hello, I am a text file pretending to be a JPEG\n", "not_an_image"),
        (encode(_rgb_face(128))[:900], "truncated_image"),
        (_bomb_png(30000), "decompression_bomb"),
        (_bomb_png(3000), "decompression_bomb"),  # under Pillow's limit, over ours
    ],
)
def test_bad_bytes_are_rejections_not_crashes(payload, reason):
    result = load_image(payload, LIMIT)
    assert isinstance(result, Rejection)
    assert result.reason == reason and result.detail


def test_random_garbage_never_raises():
    rng = np.random.default_rng(1)
    good = encode(_rgb_face())
    for trial in range(200):
        data = bytearray(good)
        for index in rng.integers(0, len(data), size=int(rng.integers(1, 20))):
            data[index] = int(rng.integers(0, 256))
        cut = int(rng.integers(1, len(data) + 1)) if trial % 3 == 0 else len(data)
        assert isinstance(load_image(bytes(data[:cut]), LIMIT), StoredImage | Rejection)


@pytest.mark.parametrize(
    "payload",
    [
        lambda: encode_png(face_like(48)),
        lambda: encode_png(np.asarray(_rgb_face(37))),
        lambda: encode(Image.fromarray(face_like(50)), "PNG", optimize=True),
        lambda: encode(_rgb_face(), "PNG", interlace=1),
        lambda: encode(Image.fromarray(face_like(40).astype(np.uint16) * 200), "PNG"),
        lambda: encode(_rgb_face().convert("P"), "PNG"),
        lambda: encode(_rgb_face()),
    ],
    ids=["grey", "rgb", "optimized", "interlaced", "16-bit", "palette", "jpeg"],
)
def test_decode_grey_gives_pillows_grey_pixels(payload):
    data = payload()
    expected = Image.open(io.BytesIO(data)).convert("L")
    decoded = decode_grey(data)
    assert decoded.mode == "L"
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(expected))


@pytest.mark.parametrize("shape", [(1, 1), (48, 48), (3, 1), (5, 7, 3), (97, 61, 3)])
def test_encode_png_decodes_to_the_same_pixels(shape):
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    pixels[: shape[0] // 2] = 255 - pixels[: shape[0] // 2]  # rows that differ by wrapping
    for array in (pixels, pixels[:, ::-1]):  # contiguous and strided
        data = encode_png(array)
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG" and image.mode == ("L" if array.ndim == 2 else "RGB")
            assert np.array_equal(np.asarray(image), array)
        assert isinstance(load_image(data, 10**6), StoredImage)  # kept as it is


def test_encode_png_refuses_what_png_here_cannot_hold():
    with pytest.raises(ValueError, match="uint8 HxW or HxWx3"):
        encode_png(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8 HxW or HxWx3"):
        encode_png(np.zeros((4, 4), np.uint16))
