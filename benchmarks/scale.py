"""Benchmark: the pipeline at scale, ingest -> crop -> dedup -> balance -> split, per stage wall
time and peak RSS.

usage: python benchmarks/scale.py N [N ...] [--shared ../shared/data] [--crop pass|detect]
       [--work DIR] [--keep] [--reuse] [--stages ingest,crop]

Builds N real-looking faces as an image folder (class folders named by the FER2013 label):
FER2013 and CK+48 faces, each blended (35-50 %) with another, randomly drawn face of the same
class, then given a seeded random transform (rotation, scale, shift, mirror, brightness and
contrast), 96-256 px, JPEG q85-95: distinct images, although every ~37k-th one starts from the
same face (an earlier version blending 20 % made transformed copies, which dedup rightly
grouped: see the note of issue 13). Each stage then runs as its own process (the stage scripts of
`pipeline/`, params written here: crop passes images through with `--crop pass`, the default),
and its peak RSS (the process and, separately, its largest worker) and wall time are printed
as JSON lines and a table. Goals (issue 13): peak RSS <= 2 GB in every stage at every N; time
per image within 15 % between 50k and 200k; 1 M images ingest -> split (crop passing through)
<= 30 min.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageEnhance

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
CK_LABELS = {"anger": 0, "disgust": 1, "fear": 2, "happy": 3, "sadness": 4, "surprise": 5}
"""CK+48's folders in FER2013's classes (contempt has none)."""
_FACES: list[tuple[np.ndarray, int]] = []
_BY_CLASS: dict[int, list[int]] = {}


def _load_faces(shared: Path) -> list[tuple[np.ndarray, int]]:
    faces = []
    for tarball, names in (
        (shared / "fer2013" / "fer2013_images.tar.gz", {c: i for i, c in enumerate(CLASSES)}),
        (shared / "ckplus48.tar.gz", CK_LABELS),
    ):
        with tarfile.open(tarball) as archive:
            for member in sorted(archive.getmembers(), key=lambda m: m.name):
                parts = Path(member.name).parts
                label = names.get(parts[-2].lower()) if len(parts) >= 2 else None
                if member.isfile() and label is not None:
                    data = archive.extractfile(member).read()
                    with Image.open(io.BytesIO(data)) as image:
                        faces.append((np.asarray(image.convert("L")), label))
    return faces


def _init(faces: list[tuple[np.ndarray, int]]) -> None:
    global _FACES, _BY_CLASS
    _FACES = faces
    _BY_CLASS = {}
    for index, (_, label) in enumerate(faces):
        _BY_CLASS.setdefault(label, []).append(index)


def _draw(job: tuple[int, str]) -> int:
    index, folder = job
    rng = np.random.default_rng([2024, index])
    pixels, label = _FACES[index % len(_FACES)]
    other = _FACES[int(rng.choice(_BY_CLASS[label]))][0]
    side = int(rng.integers(96, 257))
    face = Image.fromarray(pixels).resize((side, side), Image.Resampling.BICUBIC)
    mix = Image.fromarray(other).resize((side, side), Image.Resampling.BICUBIC)
    face = Image.blend(face, mix, float(rng.uniform(0.35, 0.5)))
    face = face.rotate(
        float(rng.uniform(-15, 15)),
        Image.Resampling.BILINEAR,
        translate=tuple(int(v) for v in rng.integers(-side // 12, side // 12 + 1, 2)),
        fillcolor=int(rng.integers(0, 256)),
    )
    zoom = float(rng.uniform(0.85, 1.0))
    inset = round(side * (1 - zoom) / 2)
    face = face.crop((inset, inset, side - inset, side - inset)).resize((side, side))
    if rng.random() < 0.5:
        face = face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    face = ImageEnhance.Brightness(face).enhance(float(rng.uniform(0.75, 1.25)))
    face = ImageEnhance.Contrast(face).enhance(float(rng.uniform(0.75, 1.25)))
    path = Path(folder) / CLASSES[label] / f"face_{index:07d}.jpg"
    face.convert("RGB").save(path, "JPEG", quality=int(rng.integers(85, 96)))
    return 1


def build_folder(shared: Path, count: int, folder: Path) -> float:
    """N faces as class folders; returns the seconds it took."""
    start = time.perf_counter()
    faces = _load_faces(shared)
    for name in CLASSES:
        (folder / name).mkdir(parents=True, exist_ok=True)
    jobs = [(i, str(folder)) for i in range(count)]
    with ProcessPoolExecutor(os.cpu_count(), initializer=_init, initargs=(faces,)) as pool:
        for _ in pool.map(_draw, jobs, chunksize=512):
            pass
    return time.perf_counter() - start


def _params(folder: Path, crop: str) -> dict:
    return {
        "sources": {"faces": {"format": "image_folder", "path": str(folder)}},
        "crop": {"defaults": {"enabled": crop == "detect"}, "sources": {"faces": {}}},
        "label_maps": {"faces": "names"},
    }


_MEASURE = """
import resource, runpy, sys, json
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print("PEAK " + json.dumps({"rss_gb": round(own, 3), "worker_rss_gb": round(workers, 3)}),
          file=sys.stderr)
"""


def run_stages(project: Path, count: int, only: set[str] | None = None) -> list[dict]:
    data = project / "data"
    stages = [
        ("ingest", ["pipeline/ingest.py", "faces", f"{data}/ingest/faces"]),
        ("crop", ["pipeline/crop.py", "faces", f"{data}/ingest/faces", f"{data}/crop/faces"]),
        ("dedup", ["pipeline/dedup.py", f"{data}/ingest", f"{data}/crop", f"{data}/dedup"]),
        ("balance", ["pipeline/balance.py", f"{data}/dedup", f"{data}/balance"]),
        ("split", ["pipeline/split.py", f"{data}/balance", f"{data}/processed"]),
    ]
    results = []
    for name, command in stages:
        if only and name not in only:
            continue
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE, *command, "--params", str(project / "params.yaml")],
            cwd=REPO,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"},
        )
        wall = time.perf_counter() - start
        if done.returncode:
            sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
        peak = json.loads(done.stderr.rsplit("PEAK ", 1)[1].splitlines()[0])
        summary = json.loads(
            (
                data
                / (
                    "processed"
                    if name == "split"
                    else f"{name}/faces"
                    if name in ("ingest", "crop")
                    else name
                )
                / "summary.json"
            ).read_text()
        )
        results.append(
            {
                "n": count,
                "stage": name,
                "wall_s": round(wall, 1),
                "us_per_image": round(wall / count * 1e6, 1),
                **peak,
                "kept": summary.get("kept"),
            }
        )
        print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sizes", nargs="+", type=int)
    parser.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--crop", choices=("pass", "detect"), default="pass")
    parser.add_argument("--work", default="/tmp/fer-scale")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--stages", help="comma-separated stages to run (default: all five)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep a project a --keep run left in --work (the folder and the stages' outputs)",
    )
    args = parser.parse_args()
    rows = []
    for count in args.sizes:
        project = Path(args.work) / f"n{count}"
        folder = project / "faces"
        if not (args.reuse and folder.is_dir()):
            subprocess.run(["rm", "-rf", str(project)], check=True)
            built = build_folder(Path(args.shared), count, folder)
            print(json.dumps({"n": count, "built_s": round(built, 1)}), flush=True)
        (project / "params.yaml").write_text(yaml.safe_dump(_params(folder, args.crop)))
        only = set(args.stages.split(",")) if args.stages else None
        rows += run_stages(project, count, only)
        total = sum(r["wall_s"] for r in rows if r["n"] == count)
        print(json.dumps({"n": count, "ingest_to_split_s": round(total, 1)}), flush=True)
        if not args.keep:
            subprocess.run(["rm", "-rf", str(project)], check=True)
    print("\n| N | stage | wall s | µs/image | peak RSS GB | largest worker GB | kept |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['stage']} | {r['wall_s']} | {r['us_per_image']} | "
            f"{r['rss_gb']} | {r['worker_rss_gb']} | {r['kept']} |"
        )


if __name__ == "__main__":
    main()
