"""Check on large photos: CK+48 and FER2013 faces pasted into 320-1280 px real photos, and
mirrored, resized, recompressed copies of every third one in a second source, through
ingest -> crop -> dedup with the default params.

usage: python benchmarks/large_photos.py [SHARED_DATA]

Prints the time, crop statuses, the largest synthesized share, the dedup counts and how many
copies landed in their original's duplicate group.
"""

import glob
import random
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from PIL import Image
from skimage import data as skdata

from fer.config import CropRuntime, IngestParams, parse_params
from fer.crop import crop_source
from fer.dataset import read_summary, read_table
from fer.dedup import dedup_sources
from fer.ingest import ingest_source

REPO = Path(__file__).resolve().parents[1]
shared = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data"
rng = random.Random(0)
root = Path(tempfile.mkdtemp())
for archive in (shared / "ckplus48.tar.gz", shared / "fer2013" / "fer2013_images.tar.gz"):
    with tarfile.open(archive) as tar:
        tar.extractall(root / "faces", filter="data")
backs = [skdata.coffee(), skdata.chelsea(), skdata.rocket(), skdata.astronaut()]
faces = sorted(glob.glob(str(root / "faces/CK+48/*/*.png")))[::30][:30]
faces += sorted(glob.glob(str(root / "faces/test/*/*.jpg")))[::400][:15]


def place(face_path, side, k):
    back = Image.fromarray(backs[k % len(backs)]).convert("RGB").resize((side, side * 3 // 4))
    face = (
        Image.open(face_path)
        .convert("RGB")
        .resize((side * 2 // 5, side * 2 // 5), Image.Resampling.BICUBIC)
    )
    back.paste(face, (side // 3, side // 8))
    return back


n = 0
for k, p in enumerate(faces):
    label = p.split("/")[-2]
    side = rng.choice([320, 640, 1280])
    img = place(p, side, k)
    (root / "raw/a" / label).mkdir(parents=True, exist_ok=True)
    img.save(root / "raw/a" / label / f"{k:03d}.jpg", quality=90)
    if k % 3 == 0:
        (root / "raw/b" / label).mkdir(parents=True, exist_ok=True)
        img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((side * 3 // 4, side * 9 // 16)).save(
            root / "raw/b" / label / f"m{k:03d}.jpg", quality=60
        )
params = parse_params(
    {
        "sources": {
            "a": {"format": "image_folder", "path": "raw/a"},
            "b": {"format": "image_folder", "path": "raw/b"},
        }
    },
    root=root,
)
start = time.time()
for name, source in params.sources.items():
    ingest_source(source, IngestParams(), root / "ingest" / name, progress=False)
    crop_source(
        root / "ingest" / name,
        params.crop[name],
        CropRuntime(),
        root / "crop" / name,
        progress=False,
    )
out = root / "dedup"
dedup_sources(
    {n: root / "crop" / n for n in params.sources},
    {n: root / "ingest" / n for n in params.sources},
    params.dedup,
    out,
    progress=False,
)
print("seconds", round(time.time() - start, 1))
rows = read_table(out).to_pandas()
print(rows.crop_status.value_counts().to_dict(), "synth", rows.crop_synthesized.max())
s = read_summary(out)
print(
    {
        k: s[k]
        for k in [
            "candidate_pairs",
            "compared_pairs",
            "duplicate_pairs",
            "mirror_pairs",
            "related_pairs",
        ]
    },
    s["groups_by_kind"],
)
b = rows[rows.source == "b"]
grouped = sum(rows[rows.dup_group == g].shape[0] > 1 for g in b.dup_group)
print("mirrored+resized+recompressed copies grouped with their original:", grouped, "of", len(b))
print("sizes", sorted(set(zip(rows.original_width, rows.original_height, strict=True))))
shutil.rmtree(root, ignore_errors=True)
