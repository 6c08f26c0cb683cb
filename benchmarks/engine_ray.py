"""Benchmark: the crop stage on the local engine vs the Ray engine (a local Ray, one actor per
core) on the same images; checks that both write the same bytes.

usage: python benchmarks/engine_ray.py INGEST_DIR [--rows 20000] [--runs 1]

INGEST_DIR is an ingest output (e.g. data/interim/ingest/fer2013 of a project, or the one
benchmarks/pipeline_real.py keeps); its first --rows rows are cropped with params.yaml's
settings for that source (FER2013's pad and margin when the name is fer2013). Prints wall time
per engine (Ray: including starting Ray and its actors), the ratio, and whether every output
file but summary.json (which names the engine) is byte-identical.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("ingest_dir")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", help="keep the outputs in this folder")
    args = parser.parse_args()

    from fer.config import load_params
    from fer.crop import crop_source
    from fer.dataset import INGEST_SCHEMA, DatasetWriter, dataset_shards, read_summary
    from fer.engine import open_engine

    params = load_params(REPO / "params.yaml")
    source = read_summary(args.ingest_dir).get("source", Path(args.ingest_dir).name)
    settings = params.crop.get(source) or next(iter(params.crop.values()))
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.keep or scratch)
        with DatasetWriter(
            tmp / "in", INGEST_SCHEMA, 2**27, {"stage": "ingest", "source": source}
        ) as w:
            left = args.rows
            for shard in dataset_shards(args.ingest_dir):
                for batch in pq.ParquetFile(shard).iter_batches(batch_size=1024):
                    if left > 0:
                        w.add_table(pa.Table.from_batches([batch.slice(0, left)]))
                        left -= min(left, batch.num_rows)
            w.close()
        times: dict[str, list[float]] = {"local": [], "ray": []}
        for run in range(args.runs):
            for kind in ("local", "ray"):
                start = time.perf_counter()
                with open_engine(kind, "", 0) as engine:
                    summary = crop_source(
                        tmp / "in",
                        settings,
                        params.crop_runtime,
                        tmp / f"{kind}{run}",
                        progress=False,
                        engine=engine,
                    )
                times[kind].append(time.perf_counter() - start)
                print(
                    json.dumps(
                        {
                            "engine": kind,
                            "run": run,
                            "rows": summary["total"],
                            "wall_s": round(times[kind][-1], 1),
                            "img_per_s": round(summary["total"] / times[kind][-1], 1),
                        }
                    ),
                    flush=True,
                )
        same = all(
            (tmp / "local0" / f.name).read_bytes() == f.read_bytes()
            for f in (tmp / "ray0").iterdir()
            if f.name != "summary.json"
        )
        best = {k: min(v) for k, v in times.items()}
        print(
            json.dumps(
                {"ray_over_local": round(best["ray"] / best["local"], 3), "identical_bytes": same}
            )
        )


if __name__ == "__main__":
    main()
