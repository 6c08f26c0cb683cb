"""Train a model on data/processed (Parquet, images decoded on the fly), GPU when present."""

from __future__ import annotations

import io
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fer.config import TrainParams
from fer.dataset import read_table
from fer.device import resolve_device
from fer.errors import FerDataError
from fer.labels import CLASSES
from fer.models import build_model

__all__ = [
    "FaceDataset",
    "load_checkpoint",
    "load_split",
    "read_checkpoint",
    "train_model",
    "transforms_for",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FaceDataset(Dataset):
    """Encoded images and label indices; decoding and augmentation happen per item."""

    def __init__(self, images: list[bytes], labels: list[int], transform: Any) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with Image.open(io.BytesIO(self.images[index])) as image:
            return self.transform(image.convert("RGB")), self.labels[index]


def transforms_for(params: TrainParams, train: bool) -> Any:
    """The seed recipe's augmentation for training; resize and normalise for evaluation."""
    from torchvision.transforms import v2

    size = (params.image_size, params.image_size)
    steps: list[Any] = [v2.ToImage(), v2.Resize(size, antialias=True)]
    if train:
        jitter = params.color_jitter
        steps += [
            v2.RandomHorizontalFlip(0.5),
            v2.RandomAffine(
                degrees=params.rotation, translate=(params.translate, params.translate)
            ),
            v2.ColorJitter(
                brightness=jitter, contrast=jitter, saturation=jitter, hue=min(0.5, jitter / 2)
            ),
            v2.GaussianBlur(kernel_size=3, sigma=(0.1, 1.0)),
        ]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return v2.Compose(steps)


def load_split(processed: str | Path, split: str) -> tuple[list[bytes], list[int]]:
    """Image bytes and label indices of one split of a split-stage output."""
    table = read_table(processed, columns=["image", "label_index", "split"]).to_pandas()
    if "split" not in table:
        raise FerDataError(f"{processed}: has no 'split' column; train on the split stage output")
    rows = table[table["split"] == split]
    return [r["bytes"] for r in rows["image"]], [int(v) for v in rows["label_index"]]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def read_checkpoint(path: str | Path) -> Any:
    """A checkpoint's contents, loaded without running code: tensors, numbers, strings,
    lists and dicts only (`weights_only=True`). Anything else is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise FerDataError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FerDataError(
            f"{path}: not a plain weights file, refused without running it ({first[:160]}); "
            "use a checkpoint that holds only tensors, numbers and strings"
        ) from None


def load_checkpoint(model: nn.Module, path: str | Path, name: str) -> None:
    """Load weights into `model`, turning an architecture mismatch into a clear error."""
    state = read_checkpoint(path)
    if isinstance(state, dict) and "state_dict" in state:
        if state.get("model") not in (None, name):
            raise FerDataError(
                f"{path}: is a {state['model']!r} checkpoint, not {name!r}; fix train.model"
            )
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise FerDataError(f"{path}: does not fit model {name!r} ({first[:160]})") from exc


def _live(live_dir: str | Path) -> Any:
    from dvclive import Live
    from scmrepo.exceptions import SCMError

    try:
        return Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None)
    except SCMError as exc:
        raise FerDataError(
            f"{Path.cwd()}: dvclive needs a git repository with at least one commit ({exc}); "
            "run `git add -A && git commit -m init`"
        ) from exc


def _run_epoch(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scaler: Any,
) -> dict[str, float]:
    from sklearn.metrics import f1_score

    training = optimizer is not None
    model.train(training)
    total_loss, truth, predicted = 0.0, [], []
    amp = device.type == "cuda"
    for images, labels in loader:
        images = images.to(device, non_blocking=True)
        if amp:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = labels.to(device, non_blocking=True)
        with torch.set_grad_enabled(training), torch.autocast(device.type, enabled=amp):
            logits = model(images)
            loss = loss_fn(logits, labels)
        if training:
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        total_loss += float(loss.detach()) * len(labels)
        truth += labels.tolist()
        predicted += logits.argmax(1).tolist()
    count = max(1, len(truth))
    return {
        "loss": total_loss / count,
        "acc": float(np.mean(np.array(truth) == np.array(predicted))) if truth else 0.0,
        "f1_weighted": float(f1_score(truth, predicted, average="weighted", zero_division=0))
        if truth
        else 0.0,
    }


def train_model(
    processed: str | Path, params: TrainParams, checkpoint_out: str | Path, live_dir: str | Path
) -> dict[str, Any]:
    """Train with early stopping on validation accuracy; keep the best checkpoint."""
    if params.checkpoint and not Path(params.checkpoint).is_file():
        raise FerDataError(
            f"{params.checkpoint}: checkpoint not found; fix train.checkpoint or set it to null"
        )
    _seed_everything(params.seed)
    device = torch.device(resolve_device(params.device, "train.device"))
    train_images, train_labels = load_split(processed, "train")
    val_images, val_labels = load_split(processed, "val")
    if not train_images or not val_images:
        empty = "train" if not train_images else "val"
        raise FerDataError(
            f"{processed}: the {empty} split is empty; check the split stage's ratios"
        )
    missing = sorted(set(range(len(CLASSES))) - set(train_labels))
    if missing:
        names = ", ".join(CLASSES[i] for i in missing)
        raise FerDataError(
            f"{processed}: no training images of {names}; add data for it or lower balance/split settings"
        )
    model = build_model(params.model, len(CLASSES), params.image_size)
    if params.checkpoint:
        load_checkpoint(model, params.checkpoint, params.model)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    weights = None
    if params.class_weights:
        counts = np.bincount(train_labels, minlength=len(CLASSES)).astype(np.float64)
        weights = torch.tensor(
            counts.sum() / (len(CLASSES) * counts), dtype=torch.float32, device=device
        )
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, params.step_size, params.gamma)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    generator = torch.Generator().manual_seed(params.seed)
    loader_args = {
        "batch_size": params.batch_size,
        "num_workers": params.workers,
        "pin_memory": device.type == "cuda",
        "persistent_workers": params.workers > 0,
    }
    train_loader = DataLoader(
        FaceDataset(train_images, train_labels, transforms_for(params, True)),
        shuffle=True,
        generator=generator,
        drop_last=len(train_images) > params.batch_size,
        **loader_args,
    )
    val_loader = DataLoader(
        FaceDataset(val_images, val_labels, transforms_for(params, False)), **loader_args
    )
    checkpoint_out = Path(checkpoint_out)
    checkpoint_out.parent.mkdir(parents=True, exist_ok=True)
    best, best_epoch, history = -1.0, -1, []
    with _live(live_dir) as live:
        for epoch in range(params.epochs):
            train_metrics = _run_epoch(model, train_loader, device, loss_fn, optimizer, scaler)
            val_metrics = _run_epoch(model, val_loader, device, loss_fn, None, scaler)
            scheduler.step()
            for split, metrics in (("train", train_metrics), ("val", val_metrics)):
                for key, value in metrics.items():
                    live.log_metric(f"{split}/{key}", round(value, 6))
            history.append({"epoch": epoch, "train": train_metrics, "val": val_metrics})
            if val_metrics["acc"] > best:
                best, best_epoch = val_metrics["acc"], epoch
                torch.save(
                    {
                        "model": params.model,
                        "image_size": params.image_size,
                        "classes": list(CLASSES),
                        "epoch": epoch,
                        "val_acc": best,
                        "params": params.model_dump(),
                        "state_dict": model.state_dict(),
                    },
                    checkpoint_out,
                )
            live.log_metric("best/val_acc", round(best, 6), plot=False)
            live.next_step()
            if epoch - best_epoch >= params.early_stopping:
                break
    return {
        "best_epoch": best_epoch,
        "best_val_acc": best,
        "epochs_run": len(history),
        "device": str(device),
    }
