"""DVC stage `crop@<source>`: re-crop the faces of one ingested source with MTCNN, on the
engine params.yaml names (this process, or a Ray cluster)."""

from fer.config import Params
from fer.crop import crop_source
from fer.engine import open_engine
from fer.stage import run_stage, source_params


def main(params: Params, source: str, in_dir: str, out_dir: str) -> None:
    source_params(params, source)
    with open_engine(params.engine.kind, params.engine.address, params.engine.workers) as engine:
        crop_source(
            in_dir,
            params.crop[source],
            params.crop_runtime,
            out_dir,
            params.storage.shard_bytes,
            engine=engine,
        )


if __name__ == "__main__":
    run_stage(
        main,
        __doc__,
        ("source", "source name under 'sources' in params.yaml"),
        ("in_dir", "the source's ingest output"),
        ("out_dir", "output dataset folder"),
    )
