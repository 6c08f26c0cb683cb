"""Benchmark: the crop stage against facenet-pytorch's MTCNN.detect at real photo sizes.

usage: python benchmarks/crop_sizes.py [SHARED_DATA] [--images N] [--sizes 48,128,...]
       [--skip-facenet] [--keep DIR]

Builds, per size, N real face photos: FER2013 and CK+48 faces (upscaled) pasted at about 40 %
of the frame into real photographs that ship with scikit-image (coffee, chelsea, rocket,
astronaut, ...), saved as JPEG q90 in an image folder; at 48 px the FER2013 images themselves.
Then, each in its own process (so that peak RSS is its own): fer-data ingest + crop with the
default params (timed: the crop stage alone), and facenet-pytorch's `MTCNN.detect` on the same
files (decode + detect, batches of equal-size images). Prints img/s, peak RSS and the found
rate of each, the share of images on which the two agree whether there is a face, and the
speed ratio. Goals (issue 12): >= 3x facenet at every size >= 256 px, >= 300 img/s at 640 px,
peak RSS <= 2 GB at any size, found rate within 1 point of facenet's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROCESSES = int(os.environ.get("CROP_PROCESSES", "0"))
"""crop.runtime.processes for the fer-data runs (`CROP_PROCESSES=1`: threads in one process)."""
BACKGROUNDS = (
    "coffee",
    "chelsea",
    "rocket",
    "astronaut",
    "hubble_deep_field",
    "immunohistochemistry",
)


def build(shared: Path, folder: Path, side: int, count: int, seed: int = 0) -> None:
    """Write `count` JPEGs of side x side*3/4 px (48: FER2013 test images as they are)."""
    from PIL import Image
    from skimage import data as skdata

    rng = random.Random(seed)
    faces = []
    with tarfile.open(shared / "fer2013" / "fer2013_images.tar.gz") as tar:
        members = sorted(
            (m for m in tar.getmembers() if m.isfile() and m.name.startswith("test/")),
            key=lambda m: m.name,
        )
        for member in rng.sample(members, count // 2 if side > 48 else count):
            faces.append((member.name.split("/")[1], tar.extractfile(member).read()))
    if side > 48:
        with tarfile.open(shared / "ckplus48.tar.gz") as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
            for member in rng.sample(members, count - len(faces)):
                faces.append((member.name.split("/")[-2], tar.extractfile(member).read()))
    backgrounds = [Image.fromarray(getattr(skdata, name)()).convert("RGB") for name in BACKGROUNDS]
    import io

    for k, (label, data) in enumerate(faces):
        target = folder / label / f"{k:05d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        if side == 48:
            target.write_bytes(data)
            continue
        height = side * 3 // 4
        photo = backgrounds[k % len(backgrounds)].resize((side, height))
        face_side = round(height * rng.uniform(0.35, 0.45))
        face = Image.open(io.BytesIO(data)).convert("RGB")
        face = face.resize((face_side, face_side), Image.Resampling.BICUBIC)
        photo.paste(face, (rng.randint(0, side - face_side), rng.randint(0, height - face_side)))
        photo.save(target, quality=90)


class TreeMemory:
    """Samples the memory of this process and all its descendants (the crop stage's worker
    processes) every 50 ms: the peak of the summed RSS (shared pages counted in every process
    that maps them) and of the summed PSS (shared pages split between them)."""

    def __init__(self) -> None:
        self.peak_rss = self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            rss = pss = 0
            for pid in _tree(os.getpid()):
                try:
                    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
                except OSError:
                    continue
                fields = dict(line.split(":", 1) for line in text.splitlines()[1:])
                rss += int(fields["Rss"].split()[0]) * 1024
                pss += int(fields["Pss"].split()[0]) * 1024
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


def run_ferdata(folder: str, work: str) -> dict:
    from fer.config import CropRuntime, IngestParams, parse_params
    from fer.crop import crop_source
    from fer.crop.detector import FaceDetector
    from fer.dataset import read_table
    from fer.ingest import ingest_source

    FaceDetector()  # imports and weights before the clock, as for facenet's MTCNN

    root = Path(work)
    params = parse_params({"sources": {"photos": {"format": "image_folder", "path": folder}}}, root)
    ingest_source(params.sources["photos"], IngestParams(), root / "ingest", progress=False)
    before = _cpu_seconds()
    start = time.perf_counter()
    with TreeMemory() as memory:
        summary = crop_source(
            root / "ingest",
            params.crop["photos"],
            CropRuntime(device="cpu", processes=PROCESSES),
            root / "crop",
            progress=False,
        )
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - before
    rows = read_table(root / "crop", columns=["id", "crop_status"]).to_pandas()
    found = {r.id.split("/", 1)[1]: r.crop_status == "ok" for r in rows.itertuples()}
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "found": found,
        "synthesized": summary["synthesized_pixel_share"],
        "tree_rss_mb": memory.peak_rss / 2**20,
        "tree_pss_mb": memory.peak_pss / 2**20,
    }


def _cpu_seconds() -> float:
    """CPU time of this process and of its ended children (the crop stage's workers)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def run_facenet(folder: str, work: str) -> dict:
    import torch
    from facenet_pytorch import MTCNN
    from PIL import Image

    torch.set_grad_enabled(False)
    mtcnn = MTCNN(device="cpu", keep_all=True)
    files = sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*.jpg"))
    start = time.perf_counter()
    found = {}
    by_size: dict[tuple[int, int], list[tuple[str, Image.Image]]] = {}
    for name in files:
        image = Image.open(Path(folder) / name).convert("RGB")
        by_size.setdefault(image.size, []).append((name, image))
        if len(by_size[image.size]) == 32:
            found.update(_detect(mtcnn, by_size.pop(image.size)))
    for batch in by_size.values():
        found.update(_detect(mtcnn, batch))
    return {"seconds": time.perf_counter() - start, "found": found}


def _detect(mtcnn, batch) -> dict:
    _, probs = mtcnn.detect([image for _, image in batch])
    return {
        name: p is not None and p[0] is not None and float(max(p)) >= 0.9
        for (name, _), p in zip(batch, probs, strict=True)
    }


def child(kind: str, folder: str, work: str) -> None:
    result = (run_ferdata if kind == "ferdata" else run_facenet)(folder, work)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(kind: str, folder: Path, work: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(folder), str(work)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("shared", nargs="?", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--sizes", default="48,128,256,640,1280")
    parser.add_argument("--skip-facenet", action="store_true")
    parser.add_argument("--keep", help="keep the images and outputs here")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp())
    print(
        "| side | images | fer-data img/s | facenet img/s | ratio | fer-data peak RSS | "
        "facenet peak RSS | found fer-data / facenet | agree | fer-data CPU ms/img (cores busy) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    # fer-data's peak RSS: the summed RSS of the stage's process and its worker processes
    # (PSS, which splits the pages they share, in brackets); facenet runs in one process.
    try:
        for side in (int(s) for s in args.sizes.split(",")):
            folder = work / f"photos{side}"
            if not folder.exists():
                build(Path(args.shared), folder, side, args.images)
            ours = measure("ferdata", folder, work / f"out{side}")
            theirs = None if args.skip_facenet else measure("facenet", folder, work / f"ref{side}")
            n = len(ours["found"])
            rate = n / ours["seconds"]
            found = sum(ours["found"].values()) / n
            cpu = f"{ours['cpu_seconds'] / n * 1000:.1f} ({ours['cpu_seconds'] / ours['seconds']:.2f})"
            rss = max(ours["tree_rss_mb"], ours["peak_rss_mb"])
            memory = f"{rss:.0f} MB ({ours['tree_pss_mb']:.0f})"
            if theirs is None:
                print(f"| {side} | {n} | {rate:.0f} | | | {memory} | | {found:.3f} | | {cpu} |")
                continue
            their_rate = n / theirs["seconds"]
            their_found = sum(theirs["found"].values()) / n
            agree = sum(ours["found"][k] == theirs["found"][k] for k in ours["found"]) / n
            print(
                f"| {side} | {n} | {rate:.0f} | {their_rate:.1f} | {rate / their_rate:.1f}x | "
                f"{memory} | {theirs['peak_rss_mb']:.0f} MB | "
                f"{found:.3f} / {their_found:.3f} | {agree:.3f} | {cpu} |",
                flush=True,
            )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
