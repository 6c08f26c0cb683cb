"""DVC stage `train`: train the model named in params.yaml on data/processed."""

import argparse

from fer.cli import run_stage
from fer.config import load_params
from fer.train import train_model


def main(processed: str, checkpoint: str, live_dir: str, params_file: str) -> None:
    params = load_params(params_file)
    result = train_model(processed, params.train, checkpoint, live_dir)
    print(
        f"best val accuracy {result['best_val_acc']:.4f} at epoch {result['best_epoch']} on {result['device']}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("processed", help="the split stage output")
    parser.add_argument("checkpoint", help="where the best checkpoint goes")
    parser.add_argument("live_dir", help="dvclive folder (metrics and plots)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    run_stage(main, args.processed, args.checkpoint, args.live_dir, args.params)
