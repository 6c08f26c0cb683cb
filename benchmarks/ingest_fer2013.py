"""Benchmark: ingest the full real FER2013 data as a CSV and as an image folder.

usage: python benchmarks/ingest_fer2013.py [SHARED_DATA]   (default ../shared/data)

Targets (issue 2): CSV (35,887 rows) <= 15 s wall and <= 2 GB peak memory;
image folder (35,887 JPEGs) <= 20 s wall. Each ingest runs in a fresh process so its
peak RSS is its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

CHILD = """
import resource, sys, time, json
from pathlib import Path
from fer.config import IngestParams
from fer.formats.fer2013_csv import Fer2013CsvSource
from fer.formats.image_folder import ImageFolderSource
from fer.ingest import ingest_source
kind, path, out = sys.argv[1:]
source = Fer2013CsvSource("fer2013", Path(path)) if kind == "csv" else ImageFolderSource("fer_img", Path(path))
start = time.perf_counter()
summary = ingest_source(source, IngestParams(), out, progress=False)
print(json.dumps({"seconds": time.perf_counter() - start, "kept": summary["kept"], "rejected": summary["rejected"],
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_child(kind: str, path: Path, out: Path) -> tuple[dict, float, float]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(path), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    stats = json.loads(result.stdout)
    return stats, wall, stats["peak_mib"]


def main() -> None:
    shared = Path(
        sys.argv[1]
        if len(sys.argv) > 1
        else Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, str(shared / "fer2013" / "make_csv.py"), str(tmp / "fer2013.csv")],
            check=True,
            capture_output=True,
        )
        print(
            f"built fer2013.csv with make_csv.py in {time.perf_counter() - start:.1f} s "
            f"({(tmp / 'fer2013.csv').stat().st_size / 2**20:.0f} MiB)"
        )
        stats, wall, peak = run_child("csv", tmp / "fer2013.csv", tmp / "out_csv")
        size = sum(p.stat().st_size for p in (tmp / "out_csv").iterdir()) / 2**20
        print(
            f"fer2013_csv : {stats['kept']} kept, {stats['rejected']} rejected | ingest {stats['seconds']:.1f} s, "
            f"process {wall:.1f} s wall, peak RSS {peak:.0f} MiB | output {size:.1f} MiB "
            f"| {stats['kept'] / stats['seconds']:.0f} rows/s"
        )

        start = time.perf_counter()
        with tarfile.open(shared / "fer2013" / "fer2013_images.tar.gz") as tar:
            tar.extractall(tmp / "imgs", filter="data")
        print(f"unpacked the image tarball in {time.perf_counter() - start:.1f} s")
        os.sync()
        stats, wall, peak = run_child("folder", tmp / "imgs", tmp / "out_img")
        print(
            f"image_folder: {stats['kept']} kept, {stats['rejected']} rejected | ingest {stats['seconds']:.1f} s, "
            f"process {wall:.1f} s wall, peak RSS {peak:.0f} MiB (main process) "
            f"| {stats['kept'] / stats['seconds']:.0f} images/s "
            f"on {os.cpu_count()} cores"
        )


if __name__ == "__main__":
    main()
