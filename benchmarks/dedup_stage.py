"""Benchmark: the dedup stage on a real project, this checkout against another, same inputs.

usage: python benchmarks/dedup_stage.py PROJECT [--against CHECKOUT] [--rounds N] [--keep DIR]

PROJECT is a project with `data/interim/ingest` and `data/interim/crop` (the one
`python benchmarks/pipeline_real.py ../shared/data --keep DIR` leaves in DIR/project: the 35,887
FER2013 images and 3,000 planted copies). Runs `pipeline/dedup.py` of this checkout (and of
CHECKOUT, e.g. a `git worktree` of an older commit) as its own process, alternating, N rounds:
prints each wall time (process start-up and imports included), the in-process time of
`dedup_sources` split by phase for this checkout, and whether every output file is
byte-identical between the two. The machine's speed drifts, so compare within one run.
Goal (issue 11): the dedup stage on FER2013 <= 15 s.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_PHASES = """
import sys, time
sys.path.insert(0, {repo!r})
import fer.dedup as d
from fer.config import load_params
from fer.engine.local import LocalEngine
times = {{}}
for name in ("_first_pass", "candidate_pairs", "decide_pairs", "_second_pass"):
    def timed(*a, _f=getattr(d, name), _n=name, **k):
        start = time.perf_counter()
        try:
            return _f(*a, **k)
        finally:
            times[_n] = round(time.perf_counter() - start, 2)
    setattr(d, name, timed)
project = {project!r}
params = load_params(project + "/params.yaml")
sources = sorted(params.sources)
start = time.perf_counter()
d.dedup_sources(
    {{n: f"{{project}}/data/interim/crop/{{n}}" for n in sources}},
    {{n: f"{{project}}/data/interim/ingest/{{n}}" for n in sources}},
    params.dedup, {out!r}, progress=False, engine=LocalEngine(),
)
print("in-process", round(time.perf_counter() - start, 2), "s:", times)
"""


def run_stage(checkout: Path, project: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(checkout / "pipeline" / "dedup.py"),
            "data/interim/ingest",
            "data/interim/crop",
            str(out),
        ],
        cwd=project,
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(checkout), "TQDM_DISABLE": "1"},
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("project")
    parser.add_argument("--against", help="another checkout to time on the same project")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", help="copy both outputs into this folder")
    args = parser.parse_args()
    project = Path(args.project).resolve()
    checkouts = [REPO] + ([Path(args.against).resolve()] if args.against else [])
    with tempfile.TemporaryDirectory(prefix="fer-dedup-stage-") as work:
        outs = {c: Path(work) / f"out{k}" for k, c in enumerate(checkouts)}
        for round_ in range(args.rounds):
            for checkout in checkouts:
                seconds = run_stage(checkout, project, outs[checkout])
                print(f"round {round_ + 1}: {checkout}: dedup stage {seconds:.1f} s", flush=True)
        if args.against:
            names = sorted(p.name for p in outs[REPO].iterdir())
            differ = [
                n for n in names if not filecmp.cmp(outs[REPO] / n, outs[checkouts[1]] / n, False)
            ]
            print(f"outputs byte-identical: {not differ} ({len(names)} files; differ: {differ})")
            if args.keep:
                for checkout, out in outs.items():
                    shutil.copytree(out, Path(args.keep) / checkout.name, dirs_exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-c",
                _PHASES.format(repo=str(REPO), project=str(project), out=str(Path(work) / "p")),
            ],
            check=True,
        )


if __name__ == "__main__":
    main()
