"""Picture and numbers: FER2013 crops with `border: edge` (old default) and `border: fit`.

usage: python benchmarks/crop_border.py [SHARED_DATA] [--images N] [--out docs/crop_border.png]

Crops N FER2013 test images (FER2013's crop params: pad 0.17, margin 0.1) both ways, prints
the share of output pixels synthesized outside the 48 px frame and how many crops have any,
and writes a contact sheet: the same faces, edge-filled above, fitted below.
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    from fer.config import CropRuntime, CropSettings, IngestParams
    from fer.crop import crop_source
    from fer.dataset import read_table
    from fer.formats.image_folder import ImageFolderSource
    from fer.ingest import ingest_source
    from fer.sheet import contact_sheet, thumbnail

    parser = argparse.ArgumentParser()
    parser.add_argument("shared", nargs="?", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--out", default=str(REPO / "docs" / "crop_border.png"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    with tarfile.open(Path(args.shared) / "fer2013" / "fer2013_images.tar.gz") as tar:
        members = sorted(
            (m for m in tar.getmembers() if m.isfile() and "/test/" in f"/{m.name}"),
            key=lambda m: m.name,
        )[:: max(1, 7178 // args.images)][: args.images]
        for member in members:
            label, name = member.name.split("/")[-2:]
            target = work / "raw" / label / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
    ingest_source(
        ImageFolderSource("fer", work / "raw"), IngestParams(), work / "ingest", progress=False
    )
    panels, rows = [], {}
    for border in ("edge", "fit"):
        settings = CropSettings(pad=0.17, margin=0.1, border=border)
        summary = crop_source(
            work / "ingest", settings, CropRuntime(device="cpu"), work / border, progress=False
        )
        table = read_table(work / border, columns=["id", "image", "crop_status"]).to_pylist()
        rows[border] = table
        print(
            f"border {border}: synthesized pixel share {summary['synthesized_pixel_share']:.4f}, "
            f"crops with synthesized pixels {summary['crops_with_synthesized_pixels']} of "
            f"{summary['kept']}"
        )
    picked = [i for i, r in enumerate(rows["fit"]) if r["crop_status"] == "ok"][::97][:20]
    for border in ("edge", "fit"):
        tiles = [
            (rows[border][i]["id"], border, thumbnail(rows[border][i]["image"]["bytes"], 72))
            for i in picked
        ]
        title = f"FER2013 crops, border: {border}" + (
            " (edge pixels replicated)" if border == "edge" else " (window inside the frame)"
        )
        panels.append((title, tiles))
    contact_sheet(panels, Path(args.out), 72)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
