"""DVC stage `ingest@<source>`: validate one raw source into a Parquet dataset."""

from fer.config import Params
from fer.ingest import ingest_source
from fer.stage import run_stage, source_params


def main(params: Params, source: str, out_dir: str) -> None:
    ingest_source(source_params(params, source), params.ingest, out_dir, params.storage.shard_bytes)


if __name__ == "__main__":
    run_stage(
        main,
        __doc__,
        ("source", "source name under 'sources' in params.yaml"),
        ("out_dir", "output dataset folder"),
    )
