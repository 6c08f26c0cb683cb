"""DVC stage `train`: train the model named in params.yaml on data/processed.

With `train.processes` above 1 the stage runs itself again under torchrun, one process per
rank (DDP: NCCL on GPUs, gloo on CPUs).
"""

import os
import subprocess
import sys

from fer.config import Params
from fer.stage import run_stage
from fer.train import train_model


def main(params: Params, processed: str, checkpoint: str, live_dir: str) -> None:
    processes = params.train.processes
    if processes > 1 and "LOCAL_RANK" not in os.environ:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
            *sys.argv,
        ]
        sys.exit(subprocess.run(command, check=False).returncode)
    result = train_model(processed, params.train, checkpoint, live_dir)
    if result["processes"] == 1 or os.environ.get("RANK") == "0":
        print(
            f"best val accuracy {result['best_val_acc']:.4f} at epoch {result['best_epoch']} "
            f"on {result['device']} x {result['processes']} process(es)"
        )


if __name__ == "__main__":
    run_stage(
        main,
        __doc__,
        ("processed", "the split stage output"),
        ("checkpoint", "where the best checkpoint goes"),
        ("live_dir", "dvclive folder (metrics and plots)"),
    )
