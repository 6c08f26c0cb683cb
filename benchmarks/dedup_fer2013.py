"""Benchmark: duplicate detection on the real FER2013 images and on 1,000,000 random hashes.

usage: python benchmarks/dedup_fer2013.py [SHARED_DATA] [--imagededup-threshold T] [--skip-pipeline]
       [--skip-imagededup] [--gallery PNG]

1. Search: imagededup 0.3.3's pHash of the 35,887 raw images, then its Cython brute-force
   search and fer-data's multi-index search on the same hashes at the same threshold; prints
   both times and whether the pairs are identical (goal: >= 100x faster, identical pairs).
   Needs `pip install imagededup==0.3.3` (the `bench` extra).
2. 1,000,000 random 64-bit hashes with 20,000 planted near pairs (distance 0..8): time for all
   pairs within radius 8 and whether every planted pair is found (goal: <= 60 s).
3. The pipeline: ingest -> crop -> dedup with params.yaml's settings on the real CSV; prints the
   hashing rate (goal: >= 10,000 faces/s), groups, pairs, cross-split and conflicting groups,
   and writes the gallery of the largest groups where --gallery says.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("shared", nargs="?", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--imagededup-threshold", type=int, default=0)
    parser.add_argument("--skip-imagededup", action="store_true")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--gallery", default="dedup_fer2013_gallery.png")
    args = parser.parse_args()
    shared = Path(args.shared)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.skip_imagededup:
            compare_with_imagededup(shared, tmp, args.imagededup_threshold)
        million_hashes()
        if not args.skip_pipeline:
            pipeline(shared, tmp, Path(args.gallery))


def compare_with_imagededup(shared: Path, tmp: Path, threshold: int) -> None:
    from PIL import Image

    from fer.dedup.search import radius_pairs

    # imagededup.methods imports its CNN module, which downloads MobileNet weights at import
    # time; this machine has no internet, and the hashing methods do not need it.
    stub = types.ModuleType("imagededup.methods.cnn")
    stub.CNN = None
    sys.modules["imagededup.methods.cnn"] = stub
    from imagededup.methods.hashing import PHash

    with tarfile.open(shared / "fer2013" / "fer2013_images.tar.gz") as tar:
        tar.extractall(tmp / "imgs", filter="data")
    files = sorted((tmp / "imgs").rglob("*.jpg"))
    phash = PHash(verbose=False)
    start = time.perf_counter()
    encodings = {
        str(f.relative_to(tmp / "imgs")): phash.encode_image(image_array=np.asarray(Image.open(f)))
        for f in files
    }
    print(f"imagededup pHash of {len(files)} images: {time.perf_counter() - start:.1f} s")
    names = list(encodings)
    words = np.array([[int(encodings[n], 16)] for n in names], dtype=np.uint64)

    start = time.perf_counter()
    ours = radius_pairs(words, threshold, 64)
    our_seconds = time.perf_counter() - start
    print(
        f"fer-data search, threshold {threshold}: {our_seconds:.2f} s, {len(ours)} pairs, "
        f"{len(np.unique(ours))} images"
    )

    start = time.perf_counter()
    found = phash.find_duplicates(
        encoding_map=encodings,
        max_distance_threshold=threshold,
        search_method="brute_force_cython",
        scores=False,
    )
    their_seconds = time.perf_counter() - start
    index = {n: i for i, n in enumerate(names)}
    theirs = {tuple(sorted((index[a], index[b]))) for a, dups in found.items() for b in dups}
    same = theirs == {tuple(p) for p in ours.tolist()}
    print(
        f"imagededup brute_force_cython, threshold {threshold}: {their_seconds:.1f} s, {len(theirs)} pairs"
    )
    print(f"identical pairs: {same}; speed-up {their_seconds / our_seconds:.0f}x")


def million_hashes(n: int = 1_000_000, planted: int = 20_000, radius: int = 8) -> None:
    from fer.dedup.search import hamming, radius_pairs

    rng = np.random.default_rng(0)
    words = rng.integers(0, 2**63, size=(n, 1), dtype=np.int64).astype(np.uint64)
    words ^= rng.integers(0, 2, size=(n, 1)).astype(np.uint64) << np.uint64(63)
    chosen = rng.choice(n, size=2 * planted, replace=False)
    sources, targets = chosen[:planted], chosen[planted:]
    for source, target in zip(sources, targets, strict=True):
        value = int(words[source, 0])
        for bit in rng.choice(64, size=int(rng.integers(0, radius + 1)), replace=False):
            value ^= 1 << int(bit)
        words[target, 0] = value
    start = time.perf_counter()
    pairs = radius_pairs(words, radius, 64)
    seconds = time.perf_counter() - start
    found = {tuple(p) for p in pairs.tolist()}
    expected = {tuple(sorted(p)) for p in zip(sources.tolist(), targets.tolist(), strict=True)}
    assert (hamming(words[pairs[:, 0]], words[pairs[:, 1]]) <= radius).all()
    print(
        f"1,000,000 random 64-bit hashes, radius {radius}: {seconds:.1f} s, {len(pairs)} pairs; "
        f"all {planted} planted pairs found: {expected <= found}"
    )


def pipeline(shared: Path, tmp: Path, gallery: Path) -> None:
    import torch

    from fer.config import IngestParams, load_params
    from fer.crop import crop_source
    from fer.dataset import read_table
    from fer.dedup import GALLERY, dedup_sources
    from fer.formats.fer2013_csv import Fer2013CsvSource
    from fer.hashing import hash_image_bytes

    params = load_params(REPO / "params.yaml")
    subprocess.run(
        [sys.executable, str(shared / "fer2013" / "make_csv.py"), str(tmp / "f.csv")],
        check=True,
        capture_output=True,
    )
    ingest_dir, crop_dir, dedup_dir = (
        tmp / "ingest" / "fer2013",
        tmp / "crop" / "fer2013",
        tmp / "dedup",
    )
    ingest_source(
        Fer2013CsvSource("fer2013", tmp / "f.csv"), IngestParams(), ingest_dir, progress=False
    )
    start = time.perf_counter()
    crop_source(ingest_dir, params.crop["fer2013"], params.crop_runtime, crop_dir, progress=False)
    print(f"crop: {time.perf_counter() - start:.1f} s ({torch.get_num_threads()} threads)")

    images = [
        r["bytes"] for r in read_table(crop_dir, columns=["image"]).column("image").to_pylist()
    ]
    dedup = params.dedup
    start = time.perf_counter()
    hash_image_bytes(images, [0.8] * len(images), dedup.hash, dedup.hash_size, dedup.workers)
    seconds = time.perf_counter() - start
    print(f"hashing: {len(images)} faces in {seconds:.2f} s = {len(images) / seconds:.0f} faces/s")

    start = time.perf_counter()
    dedup_params = type(dedup)(
        **{**dedup.__dict__, "label_maps": {"fer2013": dedup.label_maps["fer2013"]}}
    )
    summary = dedup_sources(
        {"fer2013": crop_dir},
        {"fer2013": ingest_dir},
        dedup_params,
        dedup_dir,
        progress=False,
    )
    print(
        f"dedup stage (two passes, frame and face hashes, search, groups, write): "
        f"{time.perf_counter() - start:.1f} s"
    )
    keys = (
        "duplicate_pairs",
        "duplicate_groups",
        "images_in_groups",
        "largest_group",
        "groups_by_kind",
        "groups_spanning_source_splits",
        "not_going_on_by_reason",
        "going_on",
    )
    for key in keys:
        print(f"  {key}: {summary[key]}")
    shutil.copy(dedup_dir / GALLERY, gallery)
    print(f"gallery of the largest groups: {gallery}")


from fer.ingest import ingest_source  # noqa: E402  (after the helpers, for a fast --help)

if __name__ == "__main__":
    main()
