"""Benchmark: writing a dataset's rows with the stages' Parquet encoding against zstd and
dictionaries on every column (the encoding before image bytes were stored as they are).

usage: python benchmarks/parquet_write.py DATASET_DIR [--rounds 2]

Reads every shard of a stage output (e.g. data/interim/ingest/fer2013), then writes its rows
in row groups of 1,024 to memory, alternating the two encodings, and prints seconds and MiB.
"""

from __future__ import annotations

import argparse
import io
import time

import pyarrow as pa
import pyarrow.parquet as pq

from fer.dataset import _column_encoding, dataset_shards


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    table = pa.concat_tables(pq.read_table(shard) for shard in dataset_shards(args.dataset))
    groups = [table.slice(k, 1024) for k in range(0, table.num_rows, 1024)]
    print(f"{table.num_rows} rows, {table.nbytes / 2**20:.1f} MiB in memory")
    encodings = {
        "zstd + dictionaries everywhere": {"compression": "zstd"},
        "this release (image bytes plain)": _column_encoding(table.schema),
    }
    for _ in range(args.rounds):
        for name, encoding in encodings.items():
            buffer = io.BytesIO()
            start = time.perf_counter()
            with pq.ParquetWriter(
                buffer, table.schema, write_statistics=["id"], **encoding
            ) as writer:
                for group in groups:
                    writer.write_table(group)
            seconds = time.perf_counter() - start
            print(f"{name:34s} {seconds:6.2f} s {len(buffer.getvalue()) / 2**20:8.1f} MiB")


if __name__ == "__main__":
    main()
