"""DVC stage `dedup`: map labels and group duplicates across every cropped source; the hashing
runs on the engine params.yaml names (this process, or a Ray cluster)."""

from pathlib import Path

from fer.config import Params
from fer.dedup import dedup_sources
from fer.engine import open_engine
from fer.stage import run_stage


def main(params: Params, ingest_root: str, crop_root: str, out_dir: str) -> None:
    with open_engine(params.engine.kind, params.engine.address, params.engine.workers) as engine:
        dedup_sources(
            {name: Path(crop_root) / name for name in params.sources},
            {name: Path(ingest_root) / name for name in params.sources},
            params.dedup,
            out_dir,
            params.storage.shard_bytes,
            engine=engine,
        )


if __name__ == "__main__":
    run_stage(
        main,
        __doc__,
        ("ingest_root", "folder holding one ingest output per source"),
        ("crop_root", "folder holding one crop output per source"),
        ("out_dir", "output dataset folder"),
    )
