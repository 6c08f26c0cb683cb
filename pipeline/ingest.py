"""DVC stage `ingest@<source>`: validate one raw source into a Parquet dataset."""

import argparse

from fer.cli import run_stage
from fer.config import load_params
from fer.errors import FerDataError
from fer.ingest import ingest_source


def main(source_name: str, out_dir: str, params_file: str) -> None:
    params = load_params(params_file)
    if source_name not in params.sources:
        raise FerDataError(f"{params_file}: no source named {source_name!r} under 'sources'")
    ingest_source(params.sources[source_name], params.ingest, out_dir)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", help="source name under 'sources' in params.yaml")
    parser.add_argument("out_dir", help="output dataset folder")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    run_stage(main, args.source, args.out_dir, args.params)
