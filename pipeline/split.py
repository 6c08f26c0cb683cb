"""DVC stage `split`: train/val/test by duplicate group into data/processed."""

import argparse

from fer.cli import run_stage
from fer.config import load_params
from fer.split import split_dataset


def main(in_dir: str, out_dir: str, params_file: str) -> None:
    params = load_params(params_file)
    split_dataset(in_dir, params.split, out_dir, shard_bytes=params.ingest.shard_megabytes * 2**20)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("in_dir", help="the balance output")
    parser.add_argument("out_dir", help="output dataset folder (data/processed)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    run_stage(main, args.in_dir, args.out_dir, args.params)
