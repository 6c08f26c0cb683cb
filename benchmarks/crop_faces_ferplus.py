"""Benchmark: faces kept versus FER+'s "not a face" votes, for the whole-frame O-net check.

usage: python benchmarks/crop_faces_ferplus.py [SHARED_DATA] [SHEET_PNG]

The first 1,167 rows of the original fer2013.csv (shared `fer2013_original_head.csv.gz`) are in
the order of FER+'s `fer2013new.csv`, so each image has its ten votes including `NF`. Crops
them with FER2013's params, the frame check upright only and with its default rotations, at
several thresholds, and prints the share of images with no NF vote kept as a face and the
NF-majority images caught (not kept); draws those and the faces still lost at the default
threshold into SHEET_PNG (default frame_faces.png).
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
    sheet = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("frame_faces.png")
    work = Path(tempfile.mkdtemp())
    head = work / "head.csv"
    head.write_bytes(
        gzip.decompress((shared / "fer2013" / "fer2013_original_head.csv.gz").read_bytes())
    )
    with (shared / "ferplus" / "fer2013new.csv").open(newline="") as f:
        votes = [row for _, row in zip(range(1167), list(csv.reader(f))[1:], strict=False)]
    nf = np.array([int(r[11]) for r in votes])
    ingest_source(Fer2013CsvSource("fer", head), IngestParams(), work / "ingest", progress=False)
    index = face_votes = not_face = None
    for threshold, angles in (
        (0.7, ()),
        *((t, CropSettings().frame_face_angles) for t in (0.5, 0.6, 0.7, 0.8, 0.9)),
    ):
        settings = CropSettings(
            pad=0.17, margin=0.1, frame_face_score=threshold, frame_face_angles=angles
        )
        out = work / f"crop-{threshold}-{len(angles)}"
        crop_source(work / "ingest", settings, CropRuntime(device="cpu"), out, progress=False)
        rows = read_table(out, columns=["id", "crop_status", "crop_score"]).to_pandas()
        status = rows["crop_status"].to_numpy()
        if index is None:
            index = rows["id"].str.split("/").str[1].astype(int).to_numpy()
            face_votes = nf[index] == 0
            not_face = nf[index] > 5
            detector_ok = (status != "frame_face") & (status != "no_face")
            print(
                f"{len(rows)} images: {face_votes.sum()} with no NF vote, {not_face.sum()} NF by "
                f"majority; the detector alone keeps {detector_ok[face_votes].mean():.4f} of "
                f"the faces and catches {(~detector_ok[not_face]).sum()} of the non-faces"
            )
        # What balance keeps by default: every status but no_face and too_small.
        kept = (status != "no_face") & (status != "too_small")
        views = f"upright + {len(angles)} rotations" if angles else "upright only"
        print(
            f"frame_face_score {threshold} ({views}): faces kept {kept[face_votes].mean():.4f} "
            f"({(~kept[face_votes]).sum()} lost), NF-majority caught {(~kept[not_face]).sum()}/"
            f"{not_face.sum()} (ids {sorted(index[not_face & ~kept].tolist())})"
        )
        if threshold == CropSettings().frame_face_score and angles:
            _sheet(work / "ingest", rows, kept, face_votes, not_face, sheet)
    print(f"wrote {sheet}")


def _sheet(ingest, rows, kept, face_votes, not_face, path) -> None:
    """The NF-majority images and the faces still lost, with their status and score."""
    from fer.dataset import read_table
    from fer.sheet import contact_sheet, thumbnail

    images = read_table(ingest, columns=["id", "image"]).to_pandas()
    pixels = dict(zip(images["id"], (i["bytes"] for i in images["image"]), strict=True))

    def tiles(mask):
        chosen = rows[mask]
        return [
            (
                row.id,
                f"{row.crop_status[:5]} {row.crop_score:.2f}",
                thumbnail(pixels[row.id], 72),
            )
            for row in chosen.fillna({"crop_score": -1}).itertuples()
        ]

    contact_sheet(
        [
            ("FER+ not a face by majority (caught: no_face)", tiles(not_face)),
            ("no NF vote, still no face", tiles(face_votes & ~kept)),
        ],
        path,
        72,
    )


if __name__ == "__main__":
    main()
