"""Benchmark: does dedup call the same photograph a duplicate, and nothing else?

usage: python benchmarks/dedup_pairs.py [SHARED_DATA] [--per-kind N] [--keep DIR]

Builds three image-folder sources from real faces and runs ingest -> crop -> dedup with the
repository's params:

- `ckplus`: all of CK+48 (981 posed faces, 123 subjects, three frames per sequence), subjects
  from file names (`filename_pattern: ckplus48`);
- `fer`: N FER2013 test images;
- `copies`: for N CK+48 and N FER2013 originals, one copy per transform: resize 0.5-0.9,
  JPEG q30-90, brightness and contrast +-20 %, crop shift 3-10 %, grey, mirror, mirror+shift.

Prints recall per transform (the copy lands in its original's duplicate group), precision per
hard-negative kind (CK+48 pairs of one subject across expressions, and the frames of one
sequence: never in one duplicate group), duplicate groups that mix expressions, the share of
CK+48 going on, and subjects straddling splits. It runs the CK+48 source a second time without
subjects to show what the pixel verifier alone decides on consecutive video frames.
"""

from __future__ import annotations

import argparse
import io
import itertools
import random
import shutil
import tarfile
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
from PIL import Image, ImageEnhance

REPO = Path(__file__).resolve().parents[1]
TRANSFORMS = (
    "resize",
    "jpeg",
    "brightness",
    "contrast",
    "shift",
    "grey",
    "mirror",
    "mirror_shift",
)


def transform(image: Image.Image, kind: str, rng: random.Random) -> Image.Image:
    width, height = image.size
    if kind == "resize":
        f = rng.uniform(0.5, 0.9)
        return image.resize((round(width * f), round(height * f)), Image.Resampling.BILINEAR)
    if kind == "jpeg":
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=rng.randint(30, 90))
        return Image.open(io.BytesIO(buffer.getvalue()))
    if kind == "brightness":
        factor = rng.choice([0.8, 0.85, 1.15, 1.2])
        return ImageEnhance.Brightness(image.convert("RGB")).enhance(factor)
    if kind == "contrast":
        factor = rng.choice([0.8, 0.85, 1.15, 1.2])
        return ImageEnhance.Contrast(image.convert("RGB")).enhance(factor)
    if kind in ("shift", "mirror_shift"):
        side = round(width * (1 - rng.uniform(0.03, 0.10)))
        x, y = rng.randint(0, width - side), rng.randint(0, height - side)
        out = image.crop((x, y, x + side, y + side))
        return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if kind == "mirror_shift" else out
    if kind == "grey":
        return image.convert("L")
    if kind == "mirror":
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    raise ValueError(kind)


def _extract(
    tar: tarfile.TarFile, members: list[tarfile.TarInfo], raw: Path, source: str
) -> list[tuple[str, Image.Image]]:
    """Write class-folder members under raw/<source>; returns (dataset id, image) pairs."""
    images = []
    for member in members:
        label, name = member.name.split("/")[-2:]
        target = raw / source / label / name
        target.parent.mkdir(parents=True, exist_ok=True)
        data = tar.extractfile(member).read()
        target.write_bytes(data)
        images.append((f"{source}/{label}/{name}", Image.open(io.BytesIO(data))))
    return images


def build(shared: Path, raw: Path, per_kind: int, rng: random.Random) -> dict[str, str]:
    """Write the three sources; returns copy id -> original id (both as dataset ids)."""
    with tarfile.open(shared / "ckplus48.tar.gz") as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
        ck = rng.sample(_extract(tar, members, raw, "ckplus"), per_kind)
    with tarfile.open(shared / "fer2013" / "fer2013_images.tar.gz") as tar:
        members = sorted(
            (m for m in tar.getmembers() if m.isfile() and "/test/" in f"/{m.name}"),
            key=lambda m: m.name,
        )
        fer_images = _extract(tar, rng.sample(members, per_kind), raw, "fer")
    copies = {}
    for index, ((original_id, image), kind) in enumerate(
        itertools.product(ck + fer_images, TRANSFORMS)
    ):
        label = original_id.split("/")[1]
        name = f"{kind}_{index:05d}.png"
        target = raw / "copies" / label / name
        target.parent.mkdir(parents=True, exist_ok=True)
        transform(image, kind, rng).save(target)
        copies[f"copies/{label}/{name}"] = original_id
    return copies


def run_pipeline(root: Path, sources: dict[str, dict]) -> pd.DataFrame:
    from fer.config import CropRuntime, IngestParams, parse_params
    from fer.crop import crop_source
    from fer.dedup import dedup_sources
    from fer.ingest import ingest_source

    text = (REPO / "params.yaml").read_text()
    import yaml

    raw = yaml.safe_load(text)
    raw["sources"] = sources
    raw["label_maps"] = {}
    # Every source here is 48 px-ish tight faces: crop them like FER2013.
    fer_crop = raw["crop"]["sources"]["fer2013"]
    raw["crop"]["sources"] = {name: dict(fer_crop) for name in sources}
    params = parse_params(raw, root=root)
    timings = {}
    for name, source in params.sources.items():
        start = time.perf_counter()
        ingest_source(source, IngestParams(), root / "ingest" / name, progress=False)
        crop_source(
            root / "ingest" / name,
            params.crop[name],
            CropRuntime(device="cpu"),
            root / "crop" / name,
            progress=False,
        )
        timings[name] = time.perf_counter() - start
    start = time.perf_counter()
    summary = dedup_sources(
        {n: root / "crop" / n for n in params.sources},
        {n: root / "ingest" / n for n in params.sources},
        params.dedup,
        root / "dedup",
        progress=False,
    )
    timings["dedup"] = time.perf_counter() - start
    from fer.dataset import read_table

    rows = read_table(
        root / "dedup",
        columns=["id", "label", "subject", "dup_group", "dup_kind", "related_group", "dedup_keep"],
    ).to_pandas()
    rows.attrs["summary"] = summary
    rows.attrs["timings"] = timings
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("shared", nargs="?", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--per-kind", type=int, default=150)
    parser.add_argument("--keep", help="keep the working folder here")
    args = parser.parse_args()
    rng = random.Random(2024)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp())
    try:
        copies = build(Path(args.shared), work / "raw", args.per_kind, rng)
        sources = {
            "ckplus": {
                "format": "image_folder",
                "path": "raw/ckplus",
                "filename_pattern": "ckplus48",
            },
            "copies": {"format": "image_folder", "path": "raw/copies"},
            "fer": {"format": "image_folder", "path": "raw/fer"},
        }
        shutil.copytree(work / "raw", work / "a" / "raw")
        rows = run_pipeline(work / "a", sources)
        report(rows, copies, "with subjects (filename_pattern: ckplus48)")
        shutil.copytree(work / "raw", work / "b" / "raw")
        alone = {"ckplus": dict(sources["ckplus"])}
        report(run_pipeline(work / "b", alone), {}, "CK+48 alone, with subjects (default params)")
        shutil.copytree(work / "raw", work / "c" / "raw")
        alone = {"ckplus": {"format": "image_folder", "path": "raw/ckplus"}}
        report(run_pipeline(work / "c", alone), {}, "CK+48 alone, no subjects: the verifier only")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def report(rows: pd.DataFrame, copies: dict[str, str], title: str) -> None:
    print(f"\n== {title}")
    summary, timings = rows.attrs["summary"], rows.attrs["timings"]
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    group = dict(zip(rows["id"], rows["dup_group"], strict=True))
    kind_of = dict(zip(rows["id"], rows["dup_kind"], strict=True))
    if copies:
        found: dict[str, list[bool]] = defaultdict(list)
        sibling: dict[str, list[bool]] = defaultdict(list)
        sequence_of = {i: i.split("/")[-1][:8] for i in group if i.startswith("ckplus/")}
        related = dict(zip(rows["id"], rows["related_group"], strict=True))
        misses: dict[str, list[str]] = defaultdict(list)
        members = defaultdict(set)
        for row_id, name in group.items():
            members[name].add(row_id)
        for copy_id, original_id in sorted(copies.items()):
            if original_id not in group:
                continue  # the original's label is dropped on purpose (CK+48 contempt)
            kind = copy_id.split("/")[-1].rsplit("_", 1)[0]
            origin = "ck" if original_id.startswith("ckplus") else "fer"
            hit = copy_id in group and original_id in group and group[copy_id] == group[original_id]
            found[kind].append(hit)
            found[f"{kind} ({origin})"].append(hit)
            # A CK+48 copy may join a near-identical frame of its own sequence instead.
            sequence = sequence_of.get(original_id)
            near = any(sequence_of.get(m) == sequence for m in members.get(group.get(copy_id), ()))
            sibling[kind].append(hit or (sequence is not None and near))
            if not (hit or (sequence is not None and near)):
                together = related.get(copy_id) == related.get(original_id)
                misses[kind].append(f"{copy_id} ({'related' if together else 'not related'})")
        print("recall per transform (copy in its original's duplicate group):")
        for kind in TRANSFORMS:
            hits = found[kind]
            parts = ", ".join(
                f"{o} {sum(found[f'{kind} ({o})'])}/{len(found[f'{kind} ({o})'])}"
                for o in ("ck", "fer")
            )
            either = sum(sibling[kind]) / len(sibling[kind])
            print(
                f"  {kind:13s} {sum(hits) / len(hits):.3f}  ({parts}); with its original or "
                f"a frame of the same sequence: {either:.3f}"
            )
        for kind, missed in misses.items():
            print(f"  missed {kind}: {', '.join(missed)}")
        mirror_kinds = [kind_of[c] for c in copies if "mirror" in c and c in kind_of]
        print(f"  mirror copies' group kind: {pd.Series(mirror_kinds).value_counts().to_dict()}")
    ck = rows[rows["id"].str.startswith("ckplus/")].copy()
    names = ck["id"].str.split("/").str[-1]
    ck["subject_name"] = names.str[:4]
    ck["sequence"] = names.str[:8]
    pairs = {"same subject, other expression": [], "same sequence, other frame": []}
    for _, members in ck.groupby("subject_name"):
        for a, b in itertools.combinations(members.itertuples(), 2):
            key = (
                "same sequence, other frame"
                if a.sequence == b.sequence
                else "same subject, other expression"
                if a.label != b.label
                else None
            )
            if key:
                pairs[key].append(group[a.id] == group[b.id])
    print("hard negatives called duplicates (precision = 1 - rate):")
    for key, hits in pairs.items():
        print(f"  {key:32s} {sum(hits)}/{len(hits)} = {sum(hits) / max(1, len(hits)):.4f}")
    dup = rows[rows.groupby("dup_group")["id"].transform("size") > 1]
    mixed = int((dup.groupby("dup_group")["label"].nunique() > 1).sum())
    ck_mixed = int(
        (
            ck[ck.groupby("dup_group")["id"].transform("size") > 1]
            .groupby("dup_group")["label"]
            .nunique()
            > 1
        ).sum()
    )
    print(f"duplicate groups mixing labels: {mixed} (within CK+48: {ck_mixed})")
    print(f"CK+48 going on: {ck['dedup_keep'].sum()}/{len(ck)} = {ck['dedup_keep'].mean():.3f}")
    print(
        f"summary: candidates {summary['candidate_pairs']}, compared {summary['compared_pairs']}, "
        f"duplicate pairs {summary['duplicate_pairs']} (mirror {summary['mirror_pairs']}), "
        f"related pairs {summary['related_pairs']} ({summary['related_by_subject']} by subject), "
        f"groups {summary['groups_by_kind']}"
    )


if __name__ == "__main__":
    main()
