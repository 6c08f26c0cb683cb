"""DVC stage `crop@<source>`: re-crop the faces of one ingested source with MTCNN."""

import argparse

from fer.cli import run_stage
from fer.config import load_params
from fer.crop import crop_source
from fer.errors import FerDataError


def main(source_name: str, in_dir: str, out_dir: str, params_file: str) -> None:
    params = load_params(params_file)
    if source_name not in params.crop:
        raise FerDataError(f"{params_file}: no source named {source_name!r} under 'sources'")
    crop_source(
        in_dir,
        params.crop[source_name],
        params.crop_runtime,
        out_dir,
        shard_bytes=params.ingest.shard_megabytes * 2**20,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", help="source name under 'sources' in params.yaml")
    parser.add_argument("in_dir", help="the source's ingest output")
    parser.add_argument("out_dir", help="output dataset folder")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    run_stage(main, args.source, args.in_dir, args.out_dir, args.params)
