from __future__ import annotations

import io
import json
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance
from skimage import data as skdata

from fer.config import (
    DedupParams,
    parse_params,
)
from fer.dataset import read_rejects, read_summary, read_table
from fer.dedup import GALLERY, map_label
from fer.dedup.groups import find_groups
from fer.dedup.search import brute_force_pairs, hamming, radius_pairs
from fer.errors import FerDataError
from fer.hashing import (
    hash_arrays,
    hash_arrays_with_mirror,
    hash_hex,
    hash_image_bytes,
    hashing_input,
    view_crop,
)
from fer.labels import CLASSES, PRESETS, resolve_label_map
from fer.resample import resize_stack
from tests.conftest import encode

HASHES = {"phash": imagehash.phash, "dhash": imagehash.dhash, "ahash": imagehash.average_hash}


@pytest.fixture(scope="module")
def faces() -> list[Image.Image]:
    lfw = (skdata.lfw_subset()[:100] * 255).round().astype(np.uint8)
    return [Image.fromarray(face).resize((64, 64), Image.Resampling.BICUBIC) for face in lfw]


def _our_hash(image: Image.Image, method: str = "phash", size: int = 8) -> str:
    words = hash_arrays(hashing_input(image, method, size)[None], method, size)
    return hash_hex(words, size * size)[0]


# Hashing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "reference"),
    [
        ("phash", imagehash.phash),
        ("dhash", imagehash.dhash),
        ("ahash", imagehash.average_hash),
    ],
)
@pytest.mark.parametrize("size", [8, 16])
def test_batch_hashes_equal_imagehash(faces, method, reference, size):
    images = [*faces[:40], Image.fromarray(skdata.astronaut()), Image.fromarray(skdata.camera())]
    ours = hash_image_bytes([encode(im, "PNG") for im in images], [1.0] * len(images), method, size)
    assert hash_hex(ours, size * size) == [str(reference(im, hash_size=size)) for im in images]


@pytest.mark.parametrize("method", ["phash", "dhash", "ahash"])
def test_one_pass_mirror_hashes_equal_hashing_the_mirrored_image(faces, method):
    images = [im.convert("L") for im in faces[:40]]
    direct, mirrored = hash_arrays_with_mirror(
        np.stack([hashing_input(im, method, 8) for im in images]), method, 8
    )
    flipped = [im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for im in images]
    assert hash_hex(direct, 64) == [str(HASHES[method](im)) for im in images]
    assert hash_hex(mirrored, 64) == [str(HASHES[method](im)) for im in flipped]


@pytest.mark.parametrize(
    ("method", "shape"), [("phash", (32, 32)), ("dhash", (8, 9)), ("ahash", (8, 8))]
)
def test_an_empty_stack_hashes_to_no_words(method, shape):
    empty = np.zeros((0, *shape), np.uint8)
    assert hash_arrays(empty, method, 8).shape == (0, 1)
    assert [words.shape for words in hash_arrays_with_mirror(empty, method, 8)] == [(0, 1), (0, 1)]


@pytest.mark.parametrize("method", ["lanczos", "bilinear"])
def test_stacked_resize_equals_pillow_bit_for_bit(faces, method):
    rng = np.random.default_rng(7)
    pillow = {"lanczos": Image.Resampling.LANCZOS, "bilinear": Image.Resampling.BILINEAR}[method]
    for side in (1, 5, 31, 34, 48, 64, 97):
        noise = rng.integers(0, 256, (3, side, side), dtype=np.uint8)
        real = np.stack([np.asarray(f.convert("L").resize((side, side))) for f in faces[:3]])
        stack = np.concatenate([noise, real])
        sizes = [(32, 32), (34, 34), (36, 36), (side, side), (120, 120)]
        for (width, height), resized in zip(sizes, resize_stack(stack, sizes, method), strict=True):
            expected = [
                np.asarray(Image.fromarray(im).resize((width, height), pillow)) for im in stack
            ]
            np.testing.assert_array_equal(resized, np.stack(expected), err_msg=f"{side} -> {width}")


def test_stacked_resize_refuses_non_squares():
    with pytest.raises(ValueError, match="squares only"):
        resize_stack(np.zeros((1, 40, 48), np.uint8), [(32, 32)], "lanczos")


def test_batched_hashing_equals_hashing_each_image_with_pillow(faces):
    from fer.dedup.hashwork import SUB_WINDOWS, _hash_chunk, _sub_windows
    from fer.dedup.verify import grey_view

    greys = [f.convert("L") for f in faces[:12]]
    wide = Image.fromarray(skdata.astronaut()).convert("L").resize((90, 60))
    frames = [*greys[:8], wide, greys[8], greys[9], wide]
    crops = [
        *greys[:4],
        greys[4].crop((4, 4, 60, 60)),
        *greys[5:8],
        wide,
        greys[8],
        greys[10],
        wide,
    ]
    views = [1.0, 0.7, 1.0, 0.55, 1.0, 0.9, 1.0, 0.8, 1.0, 1.0, 0.6, 0.5]
    chunk = [
        (encode(f, "PNG"), encode(c, "PNG"), v)
        for f, c, v in zip(frames, crops, views, strict=True)
    ]
    words, compared = _hash_chunk(chunk, "phash", 8)

    def reference(grey: Image.Image, view: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        hashed = view_crop(grey, view)
        return (
            hashing_input(hashed, "phash", 8),
            _sub_windows(hashed, 32, 32),
            grey_view(grey, view),
        )

    inputs = np.empty((len(chunk), 2 + 2 * SUB_WINDOWS, 32, 32), np.uint8)
    expected_views = np.empty_like(compared)
    for k, (frame, crop, view) in enumerate(zip(frames, crops, views, strict=True)):
        inputs[k, 0], inputs[k, 2 : 2 + SUB_WINDOWS], expected_views[k, 1] = reference(frame, 1.0)
        inputs[k, 1], inputs[k, 2 + SUB_WINDOWS :], expected_views[k, 0] = reference(crop, view)
    direct, mirrored = hash_arrays_with_mirror(inputs.reshape(-1, 32, 32), "phash", 8)
    expected = (
        np.stack([direct, mirrored]).reshape(2, len(chunk), inputs.shape[1], 1).swapaxes(0, 1)
    )
    np.testing.assert_array_equal(words, expected)
    np.testing.assert_array_equal(compared, expected_views)


def test_known_answer_phash_of_the_astronaut():
    astronaut = Image.fromarray(skdata.astronaut())
    assert (
        _our_hash(astronaut) == str(imagehash.phash(astronaut)) == "c2924c5532bddfc8"
    )  # imagehash 4.3


def test_hash_is_stable_under_resize_jpeg_and_brightness(faces):
    radius = DedupParams().radius_frame
    for face in faces[:30]:
        original = np.array([int(_our_hash(face), 16)], dtype=np.uint64)
        variants = [
            face.resize((96, 96), Image.Resampling.BICUBIC),
            Image.open(io.BytesIO(encode(face, "JPEG", quality=75))),
            ImageEnhance.Brightness(face).enhance(1.15),
        ]
        for variant in variants:
            other = np.array([int(_our_hash(variant), 16)], dtype=np.uint64)
            assert hamming(original[None], other[None])[0] <= radius


def test_different_faces_are_outside_the_radius(faces):
    words = np.array([[int(_our_hash(face), 16)] for face in faces], dtype=np.uint64)
    close = radius_pairs(words, DedupParams().radius_face, 64)
    assert len(close) <= 1, close  # 100 different people: at most a chance collision


def test_face_view_keeps_a_centred_square():
    image = Image.fromarray(np.arange(100 * 60, dtype=np.uint32).reshape(60, 100).astype(np.uint8))
    expected = image.crop((35, 15, 65, 45))
    np.testing.assert_array_equal(
        hashing_input(image, "ahash", 8, view=0.5), hashing_input(expected, "ahash", 8)
    )


# Search ----------------------------------------------------------------------------------


def _planted(n: int, radius: int, seed: int, words: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, size=(n, words), dtype=np.int64).astype(np.uint64)
    hashes ^= rng.integers(0, 2, size=(n, words)).astype(np.uint64) << np.uint64(63)
    for source, target in rng.integers(0, n, size=(n // 5, 2)):
        copy = hashes[source].copy()
        for bit in rng.choice(64 * words, size=int(rng.integers(0, radius + 3)), replace=False):
            copy[bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
        hashes[target] = copy
    return hashes


@pytest.mark.parametrize("radius", [0, 1, 3, 6, 8, 12])
def test_search_equals_brute_force_on_random_hashes(radius):
    hashes = _planted(4000, radius, seed=radius)
    expected = brute_force_pairs(hashes, radius)
    assert len(expected) > 0
    np.testing.assert_array_equal(radius_pairs(hashes, radius, 64), expected)
    # Query blocks searched on two threads: the same pairs in the same order.
    threaded = radius_pairs(hashes, radius, 64, block=256, threads=2)
    np.testing.assert_array_equal(threaded, expected)


@pytest.mark.parametrize("width", [8, 16, 21, 26, 40])
def test_radix_order_is_numpys_stable_argsort(width):
    from fer.dedup.search import stable_order

    values = np.random.default_rng(width).integers(0, 1 << width, 50_000, dtype=np.int64)
    values[::7] = values[0]  # many ties: stability matters
    np.testing.assert_array_equal(stable_order(values, width), np.argsort(values, kind="stable"))


def test_search_on_256_bit_hashes():
    hashes = _planted(3000, 20, seed=7, words=4)
    np.testing.assert_array_equal(radius_pairs(hashes, 20, 256), brute_force_pairs(hashes, 20))


@pytest.mark.parametrize("radius", [2, 8])
def test_compiled_search_equals_the_vectorised_one_on_crowded_buckets(radius):
    # Face hashes crowd buckets (biased low-frequency bits): most rows here share their top
    # 40 bits. One-word hashes take the compiled loop; the same hashes as two words (a zero
    # high word, same 64 bits) take the vectorised path.
    from fer.dedup.search import radius_keys_between

    rng = np.random.default_rng(radius)
    low = rng.integers(0, 1 << 24, size=(3000, 1), dtype=np.uint64)
    top = rng.choice(np.array([0, 0xABCDE12345], np.uint64), size=(3000, 1), p=[0.2, 0.8])
    hashes = (top << np.uint64(24)) | low
    two_words = np.concatenate([np.zeros_like(hashes), hashes], axis=1)
    compiled = radius_pairs(hashes, radius, 64, block=256, threads=2)
    assert len(compiled) > 20
    np.testing.assert_array_equal(compiled, radius_pairs(two_words, radius, 64))
    np.testing.assert_array_equal(compiled, brute_force_pairs(hashes, radius))
    queries = hashes[::3] ^ np.uint64(0b101)
    np.testing.assert_array_equal(
        radius_keys_between(queries, hashes, radius, 64),
        radius_keys_between(
            np.concatenate([np.zeros_like(queries), queries], 1), two_words, radius, 64
        ),
    )


def test_search_edge_cases():
    assert radius_pairs(np.zeros((0, 1), np.uint64), 4, 64).shape == (0, 2)
    assert radius_pairs(np.zeros((1, 1), np.uint64), 4, 64).shape == (0, 2)
    same = np.zeros((5, 1), np.uint64)
    assert len(radius_pairs(same, 0, 64)) == 10


def test_a_face_view_inside_another_face_view_is_a_candidate():
    # A photo and a tight crop of its face, cut by boxes a pixel apart: whole face views far
    # apart in pHash, one face view equal to a sub-window of the other's. Known answer on
    # random words (unrelated 64-bit words are ~32 bits apart: no other candidate).
    from fer.dedup import candidate_pairs
    from fer.dedup.hashwork import SUB_WINDOWS

    rng = np.random.default_rng(3)

    def random_words(rows):
        return rng.integers(0, 2**63, size=(rows, 1), dtype=np.int64).astype(np.uint64)

    n = 5
    words = {k: random_words(n) for k in ("frame", "frame_mirror", "face", "face_mirror")}
    for key in ("shifted", "shifted_mirror", "face_shifted", "face_shifted_mirror"):
        words[key] = random_words(n * SUB_WINDOWS)
    words["face_shifted"][0 * SUB_WINDOWS + 5] = words["face"][2]
    words["face_shifted_mirror"][1 * SUB_WINDOWS + 7] = words["face"][4]
    pairs, mirrored = candidate_pairs(words, DedupParams(workers=1), 64)
    assert pairs.tolist() == [[0, 2], [1, 4]] and mirrored.tolist() == [False, True]
    del words["face_shifted"], words["face_shifted_mirror"]
    words["face_shifted"] = random_words(n * SUB_WINDOWS)
    words["face_shifted_mirror"] = random_words(n * SUB_WINDOWS)
    assert len(candidate_pairs(words, DedupParams(workers=1), 64)[0]) == 0


def test_decisions_read_from_a_file_mapping_equal_decisions_in_memory(tmp_path):
    # The stage reads the verification views from a memory-mapped scratch file and lets go of
    # its pages as it goes: the same decisions as from an array in memory.
    from fer.dedup import decide_pairs
    from fer.dedup.verify import VIEW_SIDE, grey_view

    faces = (skdata.lfw_subset() * 255).round().astype(np.uint8)[:6]
    views = [grey_view(Image.fromarray(f)) for f in faces]
    shifted = [grey_view(Image.fromarray(f).crop((1, 1, f.shape[1], f.shape[0]))) for f in faces]
    pictures = np.stack([np.stack([v, v]) for v in [*views, *shifted]])
    n = len(pictures)
    meta = pd.DataFrame(
        {
            "id": [f"row{k}" for k in range(n)],
            "source": "s",
            "subject": pd.Series([None] * n, dtype=object),
            "pixel_hash": [f"p{k}" for k in range(n)],
        }
    )
    candidates = np.array([[i, j] for i in range(n) for j in range(i + 1, n)], np.int64)
    mirrored = np.zeros(len(candidates), bool)
    path = tmp_path / "views.u8"
    pictures.tofile(path)
    mapped = np.memmap(path, np.uint8, "r", shape=(n, 2, VIEW_SIDE, VIEW_SIDE))
    params = DedupParams(workers=1)
    in_memory = decide_pairs(meta, candidates, mirrored, pictures, params)
    from_file = decide_pairs(meta, candidates, mirrored, mapped, params, progress=False)
    assert in_memory.compared == from_file.compared == len(candidates)
    for field in ("duplicates", "duplicate_mirrored", "related"):
        np.testing.assert_array_equal(getattr(in_memory, field), getattr(from_file, field))
    # Each face and its copy a pixel off are one duplicate pair; the faces are unrelated.
    assert in_memory.duplicates.tolist() == [[k, k + 6] for k in range(6)]
    # Candidates in any order (the stage hands them sorted by second view): the same decisions.
    order = np.random.default_rng(0).permutation(len(candidates))
    shuffled = decide_pairs(meta, candidates[order], mirrored[order], pictures, params)
    for field in ("duplicates", "duplicate_mirrored", "related"):
        np.testing.assert_array_equal(getattr(in_memory, field), getattr(shuffled, field))


def test_candidates_come_as_int32_rows_in_verification_order():
    # Sorted by (second, mirrored, first): a verification batch resizes each view it shares
    # once, without a sort of tens of millions of pairs.
    from fer.dedup import candidate_pairs
    from fer.dedup.hashwork import SUB_WINDOWS

    n = 600
    words = {
        "frame": _planted(n, 8, seed=11),
        "face": _planted(n, 8, seed=12),
    }
    words["frame_mirror"], words["face_mirror"] = words["face"][::-1].copy(), words["frame"]
    rng = np.random.default_rng(13)
    for key in ("shifted", "shifted_mirror", "face_shifted", "face_shifted_mirror"):
        words[key] = np.repeat(words["frame"], SUB_WINDOWS, axis=0) ^ rng.integers(
            0, 2, size=(n * SUB_WINDOWS, 1), dtype=np.uint64
        )
    pairs, mirrored = candidate_pairs(words, DedupParams(workers=1), 64)
    assert pairs.dtype == np.int32 and len(pairs) > 100 and mirrored.any() and (~mirrored).any()
    assert (pairs[:, 0] < pairs[:, 1]).all()
    order = np.lexsort((pairs[:, 0], mirrored, pairs[:, 1]))
    np.testing.assert_array_equal(order, np.arange(len(pairs)))
    keys = (pairs[:, 1].astype(np.int64) * 2 + mirrored) * n + pairs[:, 0]
    assert len(np.unique(keys)) == len(keys)


# Groups -----------------------------------------------------------------------------------


def _meta(labels, pixel_hashes=None, areas=None):
    n = len(labels)
    return pd.DataFrame(
        {
            "id": [f"s/{i:03d}" for i in range(n)],
            "label": labels,
            "pixel_hash": pixel_hashes or [f"p{i}" for i in range(n)],
            "area": areas or [100] * n,
            "score": [0.99] * n,
        }
    )


def test_groups_are_transitive_and_named_by_smallest_id():
    meta = _meta(["happy"] * 6)
    groups = find_groups(meta, np.array([[0, 1], [1, 2], [4, 5]]), "drop", "majority")
    assert groups["dup_group"].tolist() == ["s/000", "s/000", "s/000", "s/003", "s/004", "s/004"]
    assert groups["dup_group_size"].tolist() == [3, 3, 3, 1, 2, 2]
    assert groups["dup_kind"].tolist() == ["near", "near", "near", "", "near", "near"]


def test_identical_pixels_group_without_a_hash_pair():
    meta = _meta(["sad", "sad", "sad"], pixel_hashes=["x", "y", "x"])
    groups = find_groups(meta, np.zeros((0, 2), np.int64), "drop", "majority")
    assert groups["dup_group"].tolist() == ["s/000", "s/001", "s/000"]
    assert groups.loc[0, "dup_kind"] == "exact"


def test_keeper_is_largest_then_smallest_id():
    meta = _meta(["happy"] * 3, areas=[100, 400, 400])
    groups = find_groups(meta, np.array([[0, 1], [1, 2]]), "drop", "majority")
    assert groups["dup_keeper"].tolist() == [False, True, False]
    assert groups["dedup_keep"].tolist() == [False, True, False]
    assert groups["dedup_reason"].tolist() == ["duplicate", "", "duplicate"]
    kept_all = find_groups(meta, np.array([[0, 1], [1, 2]]), "keep", "majority")
    assert kept_all["dedup_keep"].all()


@pytest.mark.parametrize(
    ("policy", "keep", "reasons"),
    [
        ("majority", [False, True, False, False], ["duplicate", "", "duplicate", "label_conflict"]),
        ("drop_group", [False] * 4, ["label_conflict"] * 4),
        ("keep_all", [True, False, False, False], ["", "duplicate", "duplicate", "duplicate"]),
    ],
)
def test_label_conflict_policies(policy, keep, reasons):
    meta = _meta(["happy", "happy", "happy", "sad"], areas=[100, 200, 100, 900])
    groups = find_groups(meta, np.array([[0, 1], [1, 2], [2, 3]]), "drop", policy)
    assert groups["label_conflict"].all()
    if policy == "keep_all":  # the largest image wins whatever its label
        keep, reasons = [False, False, False, True], ["duplicate", "duplicate", "duplicate", ""]
    assert groups["dedup_keep"].tolist() == keep
    assert groups["dedup_reason"].tolist() == reasons


def test_a_tied_conflict_drops_the_group_under_majority():
    groups = find_groups(_meta(["happy", "sad"]), np.array([[0, 1]]), "drop", "majority")
    assert not groups["dedup_keep"].any()


# Labels -----------------------------------------------------------------------------------


def test_label_presets():
    assert [PRESETS["fer2013"][str(i)] for i in range(7)] == list(CLASSES)
    affectnet = PRESETS["affectnet"]
    assert (affectnet["0"], affectnet["6"], affectnet["7"], affectnet["10"]) == (
        "neutral",
        "angry",
        None,
        None,
    )
    names = resolve_label_map(None, "names")
    for folder, expected in [
        ("anger", "angry"),
        ("Happiness", "happy"),
        ("sadness", "sad"),
        ("surprised", "surprise"),
        ("contempt", None),
    ]:
        assert map_label(folder, names) == expected
    assert resolve_label_map(None, "names")["happiness"] == "happy"
    custom = resolve_label_map({"preset": "names", "joyful": "happy", "sad": None}, "names")
    assert custom["joyful"] == "happy" and custom["sad"] is None and custom["fear"] == "fear"


def test_bad_label_maps_are_errors():
    base = {"sources": {"a": {"format": "image_folder", "path": "x"}}}
    with pytest.raises(FerDataError, match="unknown preset"):
        parse_params({**base, "label_maps": {"a": "kaggle"}}, Path("."))
    with pytest.raises(FerDataError, match="not classes"):
        parse_params({**base, "label_maps": {"a": {"smile": "joy"}}}, Path("."))
    with pytest.raises(FerDataError, match="not sources"):
        parse_params({**base, "label_maps": {"b": "names"}}, Path("."))
    with pytest.raises(FerDataError, match="radius"):
        parse_params({**base, "dedup": {"radius_face": 40}}, Path("."))


# The stage on the bundled sample ---------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_dedup(sample_pipeline: Path) -> dict:
    return {
        "root": sample_pipeline,
        "truth": json.loads((sample_pipeline / "raw" / "sample_ground_truth.json").read_text()),
        "summary": read_summary(sample_pipeline / "dedup"),
        "rows": read_table(sample_pipeline / "dedup").to_pandas().set_index("id"),
    }


def test_every_planted_duplicate_is_found(sample_dedup):
    rows, truth = sample_dedup["rows"], sample_dedup["truth"]
    assert any(d["cross_source"] for d in truth["duplicates"])
    for planted in truth["duplicates"]:
        groups = {rows.loc[i, "dup_group"] for i in planted["ids"]}
        assert len(groups) == 1, planted


def test_nothing_unplanted_is_grouped(sample_dedup):
    rows, truth = sample_dedup["rows"], sample_dedup["truth"]
    planted = {i for d in truth["duplicates"] for i in d["ids"]}
    assert set(rows.index[rows["dup_group_size"] > 1]) == planted


def test_contempt_is_a_counted_reject(sample_dedup):
    rejects = read_rejects(sample_dedup["root"] / "dedup").to_pylist()
    assert {r["reason"] for r in rejects} == {"dropped_label"}
    assert all("/contempt/" in r["id"] for r in rejects) and len(rejects) == 3
    summary = sample_dedup["summary"]
    assert summary["total"] == summary["kept"] + summary["rejected"]
    assert summary["rejected_by_reason"] == {"dropped_label": 3}


def test_summary_counts_add_up(sample_dedup):
    summary, rows = sample_dedup["summary"], sample_dedup["rows"]
    assert summary["going_on"] + sum(summary["not_going_on_by_reason"].values()) == summary["kept"]
    assert summary["going_on"] == int(rows["dedup_keep"].sum())
    kinds = summary["groups_by_kind"]
    assert (
        kinds["exact"] + kinds["near"] + kinds["mirror"]
        == summary["duplicate_groups"]
        == kinds["within_source"] + kinds["across_sources"]
    )
    assert kinds["across_sources"] >= 4 and kinds["conflicting_labels"] >= 2
    assert summary["groups_spanning_source_splits"]["fer2013"] >= 1
    assert (rows.groupby("dup_group")["dedup_keep"].sum() <= 1).all(), (
        "one member per group goes on"
    )
    assert set(rows["label"]) <= set(CLASSES)
    assert (rows["label_index"] == rows["label"].map(CLASSES.index)).all()


def test_gallery_and_stats(sample_dedup):
    root = sample_dedup["root"] / "dedup"
    with Image.open(root / GALLERY) as gallery:
        assert gallery.format == "PNG" and gallery.height > 200
    assert json.loads((root / "summary.json").read_text()) == read_summary(root)


@pytest.mark.parametrize("n", [50, 3000])
def test_pairs_between_two_sets_match_brute_force(n):
    from fer.dedup.search import pairs_of_keys, radius_keys_between, radius_pairs_between

    rng = np.random.default_rng(n)
    queries = rng.integers(0, 2**63, size=(n, 1), dtype=np.uint64)
    hashes = queries ^ (rng.random((n, 1)) < 0.5).astype(np.uint64) * np.uint64(0b1011)
    hashes = np.concatenate([hashes, rng.integers(0, 2**63, size=(n, 1), dtype=np.uint64)])
    found = radius_pairs_between(queries, hashes, 6, 64)
    dist = hamming(queries[:, None, :], hashes[None, :, :])
    expected = np.argwhere(dist <= 6)
    assert np.array_equal(found, expected[np.lexsort((expected[:, 1], expected[:, 0]))])
    assert len(found) >= n
    keys = radius_keys_between(queries, hashes, 6, 64)
    np.testing.assert_array_equal(keys, found[:, 0] * len(hashes) + found[:, 1])
    np.testing.assert_array_equal(pairs_of_keys(keys, len(hashes)), found)
