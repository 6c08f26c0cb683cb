"""DVC stage `balance`: a class-balanced subset of the de-duplicated merged set."""

from fer.balance import balance_dataset
from fer.config import Params
from fer.stage import run_stage


def main(params: Params, in_dir: str, out_dir: str) -> None:
    balance_dataset(in_dir, params.balance, out_dir, params.storage.shard_bytes)


if __name__ == "__main__":
    run_stage(main, __doc__, ("in_dir", "the dedup output"), ("out_dir", "output dataset folder"))
