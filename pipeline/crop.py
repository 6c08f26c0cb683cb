"""DVC stage `crop@<source>`: re-crop the faces of one ingested source with MTCNN."""

from fer.config import Params
from fer.crop import crop_source
from fer.stage import run_stage, source_params


def main(params: Params, source: str, in_dir: str, out_dir: str) -> None:
    source_params(params, source)
    crop_source(
        in_dir, params.crop[source], params.crop_runtime, out_dir, params.storage.shard_bytes
    )


if __name__ == "__main__":
    run_stage(
        main,
        __doc__,
        ("source", "source name under 'sources' in params.yaml"),
        ("in_dir", "the source's ingest output"),
        ("out_dir", "output dataset folder"),
    )
