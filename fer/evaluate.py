"""Evaluate a checkpoint on the test split: metrics JSON, confusion matrix JSON and PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fer.config import TrainParams
from fer.device import resolve_device
from fer.errors import FerDataError
from fer.labels import CLASSES
from fer.models import build_model
from fer.stream import SplitStream
from fer.train import load_checkpoint, read_checkpoint, transforms_for

__all__ = ["CONFUSION_JSON", "CONFUSION_PNG", "METRICS_JSON", "PER_CLASS_JSON", "evaluate_model"]

METRICS_JSON = "metrics.json"
PER_CLASS_JSON = "per_class.json"
CONFUSION_JSON = "confusion.json"
CONFUSION_PNG = "confusion.png"


def evaluate_model(
    processed: str | Path,
    checkpoint: str | Path,
    out_dir: str | Path,
    batch_size: int = 64,
    device: str = "auto",
) -> dict[str, Any]:
    """Accuracy, weighted and macro F1, per-class precision/recall/F1 and the confusion matrix."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FerDataError(f"{checkpoint}: no checkpoint; run the train stage first")
    saved = read_checkpoint(checkpoint)
    if (
        not isinstance(saved, dict)
        or not isinstance(saved.get("model"), str)
        or not isinstance(saved.get("image_size"), int)
    ):
        raise FerDataError(
            f"{checkpoint}: not a fer-data checkpoint (no 'model' name and 'image_size')"
        )
    transform = transforms_for(
        TrainParams(model=saved["model"], image_size=saved["image_size"]), train=False
    )
    stream = SplitStream(processed, "test", batch_size, transform)
    if not stream.rows:
        raise FerDataError(f"{processed}: the test split is empty; check the split stage's ratios")
    target = torch.device(resolve_device(device, "train.device"))
    model = build_model(saved["model"], len(CLASSES), saved["image_size"])
    load_checkpoint(model, checkpoint, saved["model"])
    model = model.to(target).eval()
    labels: list[int] = []
    predicted: list[int] = []
    with torch.inference_mode(), torch.autocast(target.type, enabled=target.type == "cuda"):
        for batch, batch_labels in stream:
            predicted += model(batch.to(target)).argmax(1).tolist()
            labels += batch_labels.tolist()
    truth = np.array(labels)
    guess = np.array(predicted)
    indices = list(range(len(CLASSES)))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, guess, labels=indices, zero_division=0
    )
    metrics = {
        "model": saved["model"],
        "test_images": len(truth),
        "accuracy": round(float((truth == guess).mean()), 6),
        "f1_weighted": round(
            float(f1_score(truth, guess, labels=indices, average="weighted", zero_division=0)), 6
        ),
        "f1_macro": round(
            float(f1_score(truth, guess, labels=indices, average="macro", zero_division=0)), 6
        ),
        "per_class": {
            name: {
                "precision": round(float(p), 6),
                "recall": round(float(r), 6),
                "f1": round(float(f), 6),
                "support": int(n),
            }
            for name, p, r, f, n in zip(CLASSES, precision, recall, f1, support, strict=True)
        },
    }
    matrix = confusion_matrix(truth, guess, labels=indices)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    headline = {k: v for k, v in metrics.items() if k != "per_class"}
    (out_dir / METRICS_JSON).write_text(json.dumps(headline, indent=2) + "\n")
    (out_dir / PER_CLASS_JSON).write_text(json.dumps(metrics["per_class"], indent=2) + "\n")
    pairs = [
        {"actual": CLASSES[a], "predicted": CLASSES[p]} for a, p in zip(truth, guess, strict=True)
    ]
    (out_dir / CONFUSION_JSON).write_text(json.dumps(pairs, indent=1) + "\n")
    _plot_confusion(matrix, metrics, out_dir / CONFUSION_PNG)
    return metrics


def _plot_confusion(matrix: np.ndarray, metrics: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            f"{count}\n{share[i, j]:.0%}",
            ha="center",
            va="center",
            fontsize=7,
            color="white" if share[i, j] > 0.5 else "black",
        )
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=30, ha="right")
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(
        f"{metrics['model']}: accuracy {metrics['accuracy']:.1%}, weighted F1 {metrics['f1_weighted']:.1%} "
        f"({metrics['test_images']} test images)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
