"""DVC stage `dedup`: map labels and group duplicates across every cropped source."""

import argparse
from pathlib import Path

from fer.cli import run_stage
from fer.config import Fer2013CsvSource, load_params
from fer.dedup import dedup_sources


def main(ingest_root: str, crop_root: str, out_dir: str, params_file: str) -> None:
    params = load_params(params_file)
    crop_dirs = {name: Path(crop_root) / name for name in params.sources}
    ingest_dirs = {name: Path(ingest_root) / name for name in params.sources}
    fer2013 = tuple(n for n, s in params.sources.items() if isinstance(s, Fer2013CsvSource))
    dedup_sources(
        crop_dirs,
        ingest_dirs,
        params.dedup,
        out_dir,
        shard_bytes=params.ingest.shard_megabytes * 2**20,
        fer2013_sources=fer2013,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("ingest_root", help="folder holding one ingest output per source")
    parser.add_argument("crop_root", help="folder holding one crop output per source")
    parser.add_argument("out_dir", help="output dataset folder")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    run_stage(main, args.ingest_root, args.crop_root, args.out_dir, args.params)
