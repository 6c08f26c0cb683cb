"""Benchmark: faces kept versus FER+'s "not a face" votes, for the whole-frame O-net check.

usage: python benchmarks/crop_faces_ferplus.py [SHARED_DATA]

The first 1,167 rows of the original fer2013.csv (shared `fer2013_original_head.csv.gz`) are in
the order of FER+'s `fer2013new.csv`, so each image has its ten votes including `NF`. Crops
them with FER2013's params and the frame check on at threshold 0 (every image the detector
misses gets its whole-frame O-net score), then prints, per threshold, the share of images with
no NF vote kept as a face and the share of NF-majority images caught (not kept).
"""

from __future__ import annotations

import csv
import gzip
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    import sys

    from fer.config import CropRuntime, CropSettings, IngestParams
    from fer.crop import crop_source
    from fer.dataset import read_table
    from fer.formats.fer2013_csv import Fer2013CsvSource
    from fer.ingest import ingest_source

    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data"
    work = Path(tempfile.mkdtemp())
    head = work / "head.csv"
    head.write_bytes(
        gzip.decompress((shared / "fer2013" / "fer2013_original_head.csv.gz").read_bytes())
    )
    with (shared / "ferplus" / "fer2013new.csv").open(newline="") as f:
        votes = [row for _, row in zip(range(1167), list(csv.reader(f))[1:], strict=False)]
    nf = np.array([int(r[11]) for r in votes])
    ingest_source(Fer2013CsvSource("fer", head), IngestParams(), work / "ingest", progress=False)
    settings = CropSettings(pad=0.17, margin=0.1, frame_face_score=0.0)
    crop_source(work / "ingest", settings, CropRuntime(device="cpu"), work / "crop", progress=False)
    rows = read_table(work / "crop", columns=["id", "crop_status", "crop_score"]).to_pandas()
    index = rows["id"].str.split("/").str[1].astype(int).to_numpy()
    status = rows["crop_status"].to_numpy()
    score = rows["crop_score"].fillna(-1).to_numpy()
    face_votes = nf[index] == 0
    not_face = nf[index] > 5
    # What balance keeps by default: every status but no_face and too_small.
    detector_ok = (status != "frame_face") & (status != "no_face") & (status != "too_small")
    print(
        f"{len(rows)} images: {face_votes.sum()} with no NF vote, {not_face.sum()} NF by majority; "
        f"detector alone keeps {detector_ok[face_votes].mean():.4f} of the faces and catches "
        f"{(~detector_ok[not_face]).mean():.4f} of the non-faces"
    )
    for threshold in (0.1, 0.3, 0.5, 0.7, 0.9):
        kept = detector_ok | ((status == "frame_face") & (score >= threshold))
        print(
            f"frame_face_score {threshold}: faces kept {kept[face_votes].mean():.4f}, "
            f"non-faces caught {(~kept[not_face]).mean():.4f} ({(~kept[not_face]).sum()}/"
            f"{not_face.sum()})"
        )


if __name__ == "__main__":
    main()
