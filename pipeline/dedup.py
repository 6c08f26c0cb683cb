"""DVC stage `dedup`: map labels and group duplicates across every cropped source."""

from pathlib import Path

from fer.config import Params
from fer.dedup import dedup_sources
from fer.stage import run_stage


def main(params: Params, ingest_root: str, crop_root: str, out_dir: str) -> None:
    dedup_sources(
        {name: Path(crop_root) / name for name in params.sources},
        {name: Path(ingest_root) / name for name in params.sources},
        params.dedup,
        out_dir,
        params.storage.shard_bytes,
    )


if __name__ == "__main__":
    run_stage(
        main,
        __doc__,
        ("ingest_root", "folder holding one ingest output per source"),
        ("crop_root", "folder holding one crop output per source"),
        ("out_dir", "output dataset folder"),
    )
