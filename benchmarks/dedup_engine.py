"""Benchmark: the dedup stage with its hashing on the local engine and on Ray, same inputs.

usage: python benchmarks/dedup_engine.py PROJECT [--workers N]

PROJECT is a project whose pipeline ran to the crop stage (e.g. the one
`benchmarks/pipeline_real.py --keep DIR` leaves): every source of its params.yaml is deduped
from data/interim/{ingest,crop} twice, with `engine.kind` local (a process pool) and ray (a
local Ray with N actors, start-up included). Prints both wall times, their ratio and whether
every output file is the same bytes (summary.json differs in `engine` only).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    sys.path.insert(0, str(REPO))
    from fer.config import load_params
    from fer.dedup import dedup_sources
    from fer.engine import open_engine

    parser = argparse.ArgumentParser()
    parser.add_argument("project")
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    project = Path(args.project)
    params = load_params(project / "params.yaml")
    names = sorted(params.sources)
    crops = {n: project / "data" / "interim" / "crop" / n for n in names}
    ingests = {n: project / "data" / "interim" / "ingest" / n for n in names}
    times, outputs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("local", "ray"):
            start = time.perf_counter()
            with open_engine(kind, "", args.workers) as engine:
                summary = dedup_sources(
                    crops, ingests, params.dedup, Path(tmp) / kind, progress=False, engine=engine
                )
            times[kind] = time.perf_counter() - start
            outputs[kind] = {p.name: p.read_bytes() for p in (Path(tmp) / kind).iterdir()}
            print(
                f"{kind}: {times[kind]:.1f} s, {summary['total']} rows, "
                f"{summary['duplicate_groups']} duplicate groups"
            )
    local, ray = outputs["local"], outputs["ray"]
    same = set(local) == set(ray) and all(local[n] == ray[n] for n in local if n != "summary.json")
    first, second = (json.loads(o["summary.json"]) for o in (local, ray))
    same = same and {k for k in first if first[k] != second[k]} == {"engine"}
    print(f"ray / local: {times['ray'] / times['local']:.2f}x; identical bytes: {same}")


if __name__ == "__main__":
    main()
