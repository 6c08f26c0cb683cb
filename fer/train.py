"""Train a model on data/processed, streamed from Parquet (images decoded on the fly), on a GPU
when present, in one process or several under `torchrun` (DDP)."""

from __future__ import annotations

import os
import pickle
import random
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from fer.config import TrainParams
from fer.device import resolve_device
from fer.errors import FerDataError
from fer.labels import CLASSES
from fer.models import build_model
from fer.stream import SplitStream

__all__ = [
    "load_checkpoint",
    "metrics_from_confusion",
    "read_checkpoint",
    "train_model",
    "transforms_for",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


def metrics_from_confusion(matrix: np.ndarray, loss_sum: float) -> dict[str, float]:
    """Mean loss, accuracy and weighted F1 from a confusion matrix (rows: actual)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    count = matrix.sum()
    if not count:
        return {"loss": 0.0, "acc": 0.0, "f1_weighted": 0.0}
    hits = np.diag(matrix)
    support = matrix.sum(axis=1)
    denominator = support + matrix.sum(axis=0)
    f1 = np.divide(2 * hits, denominator, out=np.zeros_like(hits), where=denominator > 0)
    return {
        "loss": loss_sum / count,
        "acc": float(hits.sum() / count),
        "f1_weighted": float((f1 * support).sum() / count),
    }


@dataclass(frozen=True)
class _Ranks:
    """This process's place among `torchrun`'s processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> _Ranks:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        return cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))

    def reduce(self, values: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            torch.distributed.all_reduce(values)
        return values


def _run_epoch(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scaler: Any,
    ranks: _Ranks,
) -> dict[str, float]:
    training = optimizer is not None
    model.train(training)
    classes = len(CLASSES)
    confusion = torch.zeros(classes * classes, dtype=torch.float64, device=device)
    loss_sum = torch.zeros(1, dtype=torch.float64, device=device)
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
        loss_sum += loss.detach().double() * len(labels)
        confusion += torch.bincount(
            labels * classes + logits.detach().argmax(1), minlength=classes * classes
        ).double()
    totals = ranks.reduce(torch.cat([loss_sum, confusion])).cpu().numpy()
    return metrics_from_confusion(totals[1:].reshape(classes, classes), float(totals[0]))


def _stream(
    processed: str | Path, split: str, params: TrainParams, ranks: _Ranks, train: bool
) -> SplitStream:
    return SplitStream(
        processed,
        split,
        params.batch_size,
        transforms_for(params, train),
        seed=params.seed,
        shuffle=train,
        shuffle_buffer=params.shuffle_buffer,
        drop_last=train,
        rank=ranks.rank,
        world=ranks.world,
    )


def _loader(stream: SplitStream, params: TrainParams, device: torch.device) -> DataLoader:
    # A fresh iterator per epoch: workers start with the stream's current epoch.
    return DataLoader(
        stream, batch_size=None, num_workers=params.workers, pin_memory=device.type == "cuda"
    )


def train_model(
    processed: str | Path, params: TrainParams, checkpoint_out: str | Path, live_dir: str | Path
) -> dict[str, Any]:
    """Train with early stopping on validation accuracy; keep the best checkpoint.

    Under `torchrun` (WORLD_SIZE > 1) each process trains on its own share of the row groups
    with DistributedDataParallel (NCCL on GPUs, gloo on CPUs); metrics are summed over the
    processes and rank 0 writes the checkpoint and the dvclive metrics.
    """
    if params.checkpoint and not Path(params.checkpoint).is_file():
        raise FerDataError(
            f"{params.checkpoint}: checkpoint not found; fix train.checkpoint or set it to null"
        )
    ranks = _Ranks.from_environment()
    _seed_everything(params.seed)
    device = torch.device(resolve_device(params.device, "train.device"))
    if device.type == "cuda" and ranks.world > 1:
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    train_stream = _stream(processed, "train", params, ranks, train=True)
    val_stream = _stream(processed, "val", params, ranks, train=False)
    if not train_stream.rows or not val_stream.rows:
        empty = "train" if not train_stream.rows else "val"
        raise FerDataError(
            f"{processed}: the {empty} split is empty; check the split stage's ratios"
        )
    missing = [name for name, n in zip(CLASSES, train_stream.label_counts, strict=True) if not n]
    if missing:
        raise FerDataError(
            f"{processed}: no training images of {', '.join(missing)}; add data for it or lower balance/split settings"
        )
    if ranks.world > 1:
        if device.type == "cpu":
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // ranks.world))
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        return _train(train_stream, val_stream, params, device, ranks, checkpoint_out, live_dir)
    finally:
        if ranks.world > 1:
            torch.distributed.destroy_process_group()


def _train(
    train_stream: SplitStream,
    val_stream: SplitStream,
    params: TrainParams,
    device: torch.device,
    ranks: _Ranks,
    checkpoint_out: str | Path,
    live_dir: str | Path,
) -> dict[str, Any]:
    model = build_model(params.model, len(CLASSES), params.image_size)
    if params.checkpoint:
        load_checkpoint(model, params.checkpoint, params.model)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    trained: nn.Module = model
    if ranks.world > 1:
        trained = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    weights = None
    if params.class_weights:
        counts = train_stream.label_counts.astype(np.float64)
        weights = torch.tensor(
            counts.sum() / (len(CLASSES) * counts), dtype=torch.float32, device=device
        )
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, params.step_size, params.gamma)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    checkpoint_out = Path(checkpoint_out)
    writer = ranks.rank == 0
    if writer:
        checkpoint_out.parent.mkdir(parents=True, exist_ok=True)
    best, best_epoch, history = -1.0, -1, []
    with _live(live_dir) if writer else nullcontext() as live:
        for epoch in range(params.epochs):
            train_stream.set_epoch(epoch)
            train_metrics = _run_epoch(
                trained,
                _loader(train_stream, params, device),
                device,
                loss_fn,
                optimizer,
                scaler,
                ranks,
            )
            # Validation on the bare model: no gradient sync, so ranks may hold unequal shares.
            val_metrics = _run_epoch(
                model, _loader(val_stream, params, device), device, loss_fn, None, scaler, ranks
            )
            scheduler.step()
            history.append({"epoch": epoch, "train": train_metrics, "val": val_metrics})
            improved = val_metrics["acc"] > best
            if improved:
                best, best_epoch = val_metrics["acc"], epoch
            if writer:
                _log_epoch(live, train_metrics, val_metrics, best)
                if improved:
                    _save(checkpoint_out, model, params, epoch, best)
            if epoch - best_epoch >= params.early_stopping:
                break
    return {
        "best_epoch": best_epoch,
        "best_val_acc": best,
        "epochs_run": len(history),
        "device": str(device),
        "processes": ranks.world,
        "train_images_per_epoch": len(train_stream) * params.batch_size * ranks.world,
    }


def _log_epoch(
    live: Any, train_metrics: dict[str, float], val_metrics: dict[str, float], best: float
) -> None:
    for split, metrics in (("train", train_metrics), ("val", val_metrics)):
        for key, value in metrics.items():
            live.log_metric(f"{split}/{key}", round(value, 6))
    live.log_metric("best/val_acc", round(best, 6), plot=False)
    live.next_step()


def _save(path: Path, model: nn.Module, params: TrainParams, epoch: int, val_acc: float) -> None:
    torch.save(
        {
            "model": params.model,
            "image_size": params.image_size,
            "classes": list(CLASSES),
            "epoch": epoch,
            "val_acc": val_acc,
            "params": params.model_dump(),
            "state_dict": model.state_dict(),
        },
        path,
    )
