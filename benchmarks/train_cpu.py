"""Benchmark: the tiny CPU training configuration, and each model's training throughput.

usage: python benchmarks/train_cpu.py PROCESSED [--per-split 300,50,50] [--throughput]

PROCESSED is a split stage output (data/processed, or the one benchmarks/pipeline_real.py keeps
with --keep). A slice of it (train, val, test rows) is trained for one epoch with params.yaml's
`train` settings and evaluated; prints wall times (goal: <= 3 min on 2 cores). --throughput also
times forward+backward of every model at 64 px and, on a CUDA machine, at 224 px with AMP.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("processed")
    parser.add_argument("--per-split", default="300,50,50")
    parser.add_argument("--throughput", action="store_true")
    args = parser.parse_args()

    from fer.config import load_params
    from fer.dataset import SPLIT_SCHEMA, DatasetWriter, iter_rows, read_table
    from fer.evaluate import evaluate_model
    from fer.ranking import id_rank
    from fer.train import train_model

    limits = dict(
        zip(("train", "val", "test"), (int(n) for n in args.per_split.split(",")), strict=True)
    )
    params = load_params(REPO / "params.yaml").train.model_copy(update={"epochs": 1})
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        meta = read_table(args.processed, columns=["id", "split"]).to_pandas()
        meta["rank"] = id_rank(meta["id"], 1)
        chosen = set(
            meta.sort_values("rank")
            .groupby("split")
            .head(max(limits.values()))
            .loc[lambda d: d.groupby("split").cumcount() < d["split"].map(limits), "id"]
        )
        taken = meta[meta["id"].isin(chosen)]["split"].value_counts().to_dict()
        with DatasetWriter(tmp / "slice", SPLIT_SCHEMA, 2**27, {"stage": "split"}) as writer:
            for row in iter_rows(args.processed):
                if row["id"] in chosen:
                    writer.add(row, row["id"])
            writer.close()
        start = time.perf_counter()
        result = train_model(tmp / "slice", params, tmp / "model.pt", tmp / "live")
        trained = time.perf_counter() - start
        start = time.perf_counter()
        metrics = evaluate_model(
            tmp / "slice", tmp / "model.pt", tmp / "eval", params.batch_size, params.device
        )
        evaluated = time.perf_counter() - start
    print(
        f"tiny config ({params.model}, {params.image_size}px, 1 epoch, {taken}): train {trained:.1f} s, "
        f"evaluate {evaluated:.1f} s, total {trained + evaluated:.1f} s on {result['device']}; "
        f"test accuracy {metrics['accuracy']:.3f}"
    )
    if args.throughput:
        throughput()


def throughput() -> None:
    from fer.models import MODEL_NAMES, build_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sizes = (64, 224) if device.type == "cuda" else (64,)
    for size in sizes:
        for name in (*MODEL_NAMES, "resnet18"):
            model = build_model(name, 7, size).to(device).train()
            batch = 32
            images = torch.randn(batch, 3, size, size, device=device)
            labels = torch.randint(0, 7, (batch,), device=device)
            optimizer = torch.optim.Adam(model.parameters(), 1e-4)
            scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
            steps, start = 0, 0.0
            for step in range(8 if device.type == "cuda" else 3):
                if step == 2:
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    start, steps = time.perf_counter(), 0
                with torch.autocast(device.type, enabled=device.type == "cuda"):
                    loss = torch.nn.functional.cross_entropy(model(images), labels)
                optimizer.zero_grad()
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                steps += 1
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            label = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
            print(
                f"{label} {size}px {name:30s} {steps * batch / seconds:8.1f} img/s (train step, batch {batch})"
            )


if __name__ == "__main__":
    main()
