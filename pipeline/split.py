"""DVC stage `split`: train/val/test by duplicate group into data/processed."""

from fer.config import Params
from fer.split import split_dataset
from fer.stage import run_stage


def main(params: Params, in_dir: str, out_dir: str) -> None:
    licences = {name: source.licence for name, source in params.sources.items()}
    split_dataset(in_dir, params.split, out_dir, params.storage.shard_bytes, licences=licences)


if __name__ == "__main__":
    run_stage(
        main,
        __doc__,
        ("in_dir", "the balance output"),
        ("out_dir", "output dataset folder (data/processed)"),
    )
