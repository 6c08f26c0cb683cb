"""DVC stage `balance`: a class-balanced subset of the de-duplicated merged set."""

import argparse

from fer.balance import balance_dataset
from fer.cli import run_stage
from fer.config import load_params


def main(in_dir: str, out_dir: str, params_file: str) -> None:
    params = load_params(params_file)
    balance_dataset(
        in_dir, params.balance, out_dir, shard_bytes=params.ingest.shard_megabytes * 2**20
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("in_dir", help="the dedup output")
    parser.add_argument("out_dir", help="output dataset folder")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    run_stage(main, args.in_dir, args.out_dir, args.params)
