"""DVC stage `evaluate`: test-split metrics and confusion matrix of the trained checkpoint."""

import argparse

from fer.cli import run_stage
from fer.config import load_params
from fer.evaluate import evaluate_model


def main(processed: str, checkpoint: str, out_dir: str, params_file: str) -> None:
    params = load_params(params_file)
    metrics = evaluate_model(
        processed, checkpoint, out_dir, params.train.batch_size, params.train.device
    )
    print(f"test accuracy {metrics['accuracy']:.4f}, weighted F1 {metrics['f1_weighted']:.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("processed", help="the split stage output")
    parser.add_argument("checkpoint", help="the trained checkpoint")
    parser.add_argument("out_dir", help="metrics folder")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    run_stage(main, args.processed, args.checkpoint, args.out_dir, args.params)
