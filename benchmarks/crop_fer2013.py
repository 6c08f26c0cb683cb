"""Benchmark: MTCNN re-cropping of all 35,887 real FER2013 images.

usage: python benchmarks/crop_fer2013.py [SHARED_DATA] [--reference N] [--processes N]

Builds the FER2013 CSV with ../shared/data/fer2013/make_csv.py, ingests it, then runs the crop
stage with the fer2013 settings of params.yaml. Prints images/s, the face-found rate per class,
and, with --reference N, facenet-pytorch's own MTCNN.detect on the first N padded images for
comparison (speed and agreement). Goal (issue 3): >= 400 img/s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("shared", nargs="?", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument(
        "--reference", type=int, default=2048, help="images for facenet's MTCNN (0: skip)"
    )
    parser.add_argument(
        "--processes", type=int, help="crop.runtime.processes (default: params.yaml's)"
    )
    args = parser.parse_args()

    import torch

    from fer.config import IngestParams, load_params
    from fer.crop import crop_source
    from fer.device import resolve_device
    from fer.formats.fer2013_csv import Fer2013CsvSource
    from fer.ingest import ingest_source

    params = load_params(REPO / "params.yaml")
    settings, runtime = params.crop["fer2013"], params.crop_runtime
    if args.processes is not None:
        runtime = runtime.model_copy(update={"processes": args.processes})
    device = resolve_device(runtime.device)
    name = (
        torch.cuda.get_device_name()
        if device == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"device: {name}; settings: pad={settings.pad} margin={settings.margin} "
        f"min_face_size={settings.min_face_size} thresholds={settings.thresholds} min_score={settings.min_score} "
        f"processes={runtime.processes}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run(
            [
                sys.executable,
                str(Path(args.shared) / "fer2013" / "make_csv.py"),
                str(tmp / "f.csv"),
            ],
            check=True,
            capture_output=True,
        )
        ingest_source(
            Fer2013CsvSource("fer2013", tmp / "f.csv"),
            IngestParams(),
            tmp / "ingest",
            progress=False,
        )
        start = time.perf_counter()
        summary = crop_source(tmp / "ingest", settings, runtime, tmp / "crop", progress=False)
        seconds = time.perf_counter() - start
        total = summary["total"]
        print(f"crop: {total} images in {seconds:.1f} s = {total / seconds:.0f} img/s")
        statuses = summary["kept_by_crop_status"]
        print(
            "status:", ", ".join(f"{k} {v} ({v / total:.1%})" for k, v in sorted(statuses.items()))
        )
        print(f"{'class':9s} {'images':>7s} {'ok':>7s} {'ok+low_score':>13s}")
        for label, counts in summary["status_by_label"].items():
            n = sum(counts.values())
            ok, low = counts.get("ok", 0), counts.get("low_score", 0)
            print(f"{NAMES[int(label)]:9s} {n:7d} {ok / n:7.1%} {(ok + low) / n:13.1%}")
        if args.reference:
            reference(tmp / "ingest", settings, args.reference)


def reference(ingest_dir: Path, settings, n: int) -> None:
    import io

    import numpy as np
    from facenet_pytorch import MTCNN
    from PIL import Image

    from fer.crop.detector import FaceDetector
    from fer.dataset import read_table

    rows = read_table(ingest_dir, columns=["image"]).slice(0, n).column("image").to_pylist()
    pad = round(settings.pad * 48)
    images = np.stack(
        [
            np.pad(np.asarray(Image.open(io.BytesIO(r["bytes"]))), pad, constant_values=128)
            for r in rows
        ]
    )
    rgb = np.repeat(images[..., None], 3, axis=3)
    kwargs = {"min_face_size": settings.min_face_size, "thresholds": list(settings.thresholds)}
    mtcnn, ours = (
        MTCNN(keep_all=True, **kwargs),
        FaceDetector(settings.min_face_size, settings.thresholds),
    )
    start = time.perf_counter()
    ref_boxes = [b for i in range(0, n, 512) for b in mtcnn.detect(rgb[i : i + 512])[0]]
    ref_seconds = time.perf_counter() - start
    start = time.perf_counter()
    found = [ours.detect(rgb[i : i + 512]) for i in range(0, n, 512)]
    our_seconds = time.perf_counter() - start
    our_found = np.zeros(n, bool)
    for offset, batch in zip(range(0, n, 512), found, strict=True):
        our_found[offset + batch.image] = True
    ref_found = np.array([b is not None for b in ref_boxes])
    print(
        f"facenet-pytorch MTCNN.detect on {n} padded images: {n / ref_seconds:.0f} img/s, found {ref_found.mean():.1%}"
    )
    print(
        f"fer.crop FaceDetector on the same images:        {n / our_seconds:.0f} img/s, found {our_found.mean():.1%}; "
        f"same found/not-found verdict on {(ref_found == our_found).mean():.1%}"
    )


if __name__ == "__main__":
    main()
