"""Benchmark: the whole data pipeline (ingest -> crop -> dedup -> balance -> split) on real data.

usage: python benchmarks/pipeline_real.py [SHARED_DATA] [--affectnet N] [--keep DIR]

Builds a throwaway copy of this project whose raw data are the full FER2013 CSV (rebuilt with
make_csv.py) and an AffectNet-shaped folder: N FER2013 test images, upscaled to 96x96 RGB JPEGs
in Kaggle AffectNet class folders (so they are also cross-source duplicates the dedup stage must
keep out of leakage). Runs `dvc repro` one stage at a time, prints each stage's wall time, the
total (goal: <= 10 min on 2 cores), a no-op `dvc repro split` (goal: <= 3 s; nothing may run), the processed files, the
class x split table and the duplicate numbers.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KAGGLE = {
    "angry": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "sad": "sad",
    "surprise": "surprise",
    "neutral": "neutral",
}
STAGES = (
    "ingest@fer2013",
    "ingest@affectnet",
    "crop@fer2013",
    "crop@affectnet",
    "dedup",
    "balance",
    "split",
)


def run(args: list[str], cwd: Path) -> float:
    return run_output(args, cwd)[0]


def run_output(args: list[str], cwd: Path) -> tuple[float, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("shared", nargs="?", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--affectnet", type=int, default=3000)
    parser.add_argument("--keep", help="keep the project here instead of a temporary folder")
    args = parser.parse_args()
    shared = Path(args.shared)
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp())
    try:
        project = build_project(shared, tmp / "project", args.affectnet)
        timings = {stage: run(["dvc", "repro", "-s", stage], project) for stage in STAGES}
        total = sum(timings.values())
        for stage, seconds in timings.items():
            print(f"{stage:18s} {seconds:7.1f} s")
        print(f"{'total':18s} {total:7.1f} s")
        # A real no-op: every data stage is up to date, so `dvc repro split` only checks hashes
        # (a bare `dvc repro` would train and evaluate, which are not part of this benchmark).
        seconds, output = run_output(["dvc", "repro", "split"], project)
        if "Running stage" in output:
            raise SystemExit(f"the no-op repro ran a stage:\n{output}")
        print(f"no-op dvc repro split: {seconds:.2f} s (no stage ran)")
        report(project)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def build_project(shared: Path, project: Path, affectnet: int) -> Path:
    from PIL import Image

    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for relative in files:
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, project / relative)
    (project / "dvc.lock").unlink(missing_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@b",
            "commit",
            "-qm",
            "init",
            "--allow-empty",
        ],
        cwd=project,
        check=True,
    )
    raw = project / "data" / "raw"
    raw.mkdir(parents=True)
    subprocess.run(
        [sys.executable, str(shared / "fer2013" / "make_csv.py"), str(raw / "fer2013.csv")],
        check=True,
        capture_output=True,
    )
    with tarfile.open(shared / "fer2013" / "fer2013_images.tar.gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith("test/")]
        step = max(1, len(members) // affectnet)
        for number, member in enumerate(members[::step][:affectnet]):
            label = member.name.split("/")[1]
            image = (
                Image.open(io.BytesIO(tar.extractfile(member).read()))
                .convert("RGB")
                .resize((96, 96))
            )
            target = raw / "affectnet" / KAGGLE[label] / f"image{number:07d}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            image.save(target, quality=92)
    return project


def report(project: Path) -> None:
    processed = project / "data" / "processed"
    files = sorted(p.name for p in processed.iterdir())
    size = sum(p.stat().st_size for p in processed.iterdir()) / 2**20
    print(f"data/processed: {len(files)} files, {size:.1f} MiB: {', '.join(files)}")
    dedup = json.loads((project / "data" / "interim" / "dedup" / "summary.json").read_text())
    for key in (
        "duplicate_pairs",
        "duplicate_groups",
        "images_in_groups",
        "groups_by_kind",
        "groups_spanning_source_splits",
        "not_going_on_by_reason",
    ):
        print(f"dedup {key}: {dedup[key]}")
    balance = json.loads((project / "data" / "interim" / "balance" / "summary.json").read_text())
    print(
        f"balance: rejected_by_reason {balance['rejected_by_reason']}; warnings {balance['warnings']}"
    )
    split = json.loads((processed / "summary.json").read_text())
    print(
        f"split: groups in two splits {split['groups_in_two_splits']}, multi-image groups {split['multi_image_groups']}"
    )
    print(f"{'label':9s} {'train':>6s} {'val':>5s} {'test':>5s} {'total':>6s}")
    for label, counts in split["label_by_split"].items():
        print(
            f"{label:9s} {counts['train']:6d} {counts['val']:5d} {counts['test']:5d} {sum(counts.values()):6d}"
        )
    totals = split["split_totals"]
    print(
        f"{'total':9s} {totals['train']:6d} {totals['val']:5d} {totals['test']:5d} {sum(totals.values()):6d}"
    )
    print("by source:", split["kept_by_source"])


if __name__ == "__main__":
    main()
