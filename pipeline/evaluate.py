"""DVC stage `evaluate`: test-split metrics and confusion matrix of the trained checkpoint."""

from fer.config import Params
from fer.evaluate import evaluate_model
from fer.stage import run_stage


def main(params: Params, processed: str, checkpoint: str, out_dir: str) -> None:
    metrics = evaluate_model(
        processed, checkpoint, out_dir, params.train.batch_size, params.train.device
    )
    print(f"test accuracy {metrics['accuracy']:.4f}, weighted F1 {metrics['f1_weighted']:.4f}")


if __name__ == "__main__":
    run_stage(
        main,
        __doc__,
        ("processed", "the split stage output"),
        ("checkpoint", "the trained checkpoint"),
        ("out_dir", "metrics folder"),
    )
