"""Benchmark: streaming the processed set (fer.stream.SplitStream) vs loading it whole, as the
train stage did before (every image's bytes in one pandas frame, a map-style Dataset).

usage: python benchmarks/train_stream.py PROCESSED [--batches 60] [--workers 0]

For each loader, in a fresh subprocess: the training split's first `--batches` batches
(decode + the seed recipe's augmentation at params.yaml's image size, no model) with images/s,
and the peak RSS, on the whole PROCESSED and on a quarter of it (every 4th row group), so the
peak shows whether memory grows with the rows.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _child(kind: str, processed: str, batches: int, workers: int) -> None:
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    from fer.config import load_params
    from fer.dataset import read_table
    from fer.stream import SplitStream
    from fer.train import transforms_for

    params = load_params(REPO / "params.yaml").train
    transform = transforms_for(params, True)
    start = time.perf_counter()
    if kind == "stream":
        stream = SplitStream(
            processed,
            "train",
            params.batch_size,
            transform,
            seed=1,
            shuffle=True,
            shuffle_buffer=params.shuffle_buffer,
            drop_last=True,
        )
        loader = DataLoader(stream, batch_size=None, num_workers=workers)
        rows = stream.rows
    else:
        table = read_table(processed, columns=["image", "label_index", "split"]).to_pandas()
        rows_frame = table[table["split"] == "train"]
        images = [r["bytes"] for r in rows_frame["image"]]
        labels = [int(v) for v in rows_frame["label_index"]]
        rows = len(images)

        class Whole(Dataset):
            def __len__(self) -> int:
                return len(images)

            def __getitem__(self, i: int):
                with Image.open(io.BytesIO(images[i])) as image:
                    return transform(image.convert("RGB")), labels[i]

        loader = DataLoader(
            Whole(),
            batch_size=params.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(1),
            drop_last=True,
            num_workers=workers,
        )
    ready = time.perf_counter() - start
    seen, start = 0, time.perf_counter()
    for index, (batch, _) in enumerate(loader):
        seen += len(batch)
        if index + 1 == batches:
            break
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(
        json.dumps(
            {
                "kind": kind,
                "rows": rows,
                "ready_s": round(ready, 2),
                "images_per_s": round(seen / wall, 1),
                "peak_rss_gb": round(peak, 3),
                "worker_peak_rss_gb": round(children, 3),
            }
        )
    )


def _quarter(processed: str, out: Path) -> str:
    import pyarrow.parquet as pq

    from fer.dataset import SPLIT_SCHEMA, DatasetWriter, dataset_shards

    with DatasetWriter(out, SPLIT_SCHEMA, 2**27, {"stage": "split"}) as writer:
        for shard in dataset_shards(processed):
            file = pq.ParquetFile(shard)
            for group in range(0, file.num_row_groups, 4):
                writer.add_table(file.read_row_group(group))
        writer.close()
    return str(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("processed")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.processed, args.batches, args.workers)
        return
    with tempfile.TemporaryDirectory() as tmp:
        quarter = _quarter(args.processed, Path(tmp) / "quarter")
        for data in (quarter, args.processed):
            for kind in ("whole", "stream"):
                done = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        data,
                        "--child",
                        kind,
                        "--batches",
                        str(args.batches),
                        "--workers",
                        str(args.workers),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=REPO,
                )
                print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
