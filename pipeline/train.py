"""DVC stage `train`: train the model named in params.yaml on data/processed."""

from fer.config import Params
from fer.stage import run_stage
from fer.train import train_model


def main(params: Params, processed: str, checkpoint: str, live_dir: str) -> None:
    result = train_model(processed, params.train, checkpoint, live_dir)
    print(
        f"best val accuracy {result['best_val_acc']:.4f} at epoch {result['best_epoch']} "
        f"on {result['device']}"
    )


if __name__ == "__main__":
    run_stage(
        main,
        __doc__,
        ("processed", "the split stage output"),
        ("checkpoint", "where the best checkpoint goes"),
        ("live_dir", "dvclive folder (metrics and plots)"),
    )
