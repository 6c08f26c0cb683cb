"""Running a pipeline stage: arguments, params, errors as one line, and the shared
"stream a dataset, decide per row, write" pass.

A stage script in `pipeline/` is one call::

    run_stage(main, __doc__, ("in_dir", "the dedup output"), ("out_dir", "output folder"))

where `main(params, in_dir, out_dir)` calls one `fer.*` function.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from fer.config import Params, load_params
from fer.dataset import DatasetWriter, iter_batches
from fer.errors import FerDataError, exit_with

__all__ = ["rewrite_rows", "run_stage", "source_params"]


def run_stage(
    main: Callable[..., Any],
    description: str | None,
    *arguments: tuple[str, str],
    argv: Sequence[str] | None = None,
) -> None:
    """Parse `arguments` (name, help) and `--params`, load the params once and call
    `main(params, *values)`; a FerDataError becomes one line and exit code 1."""
    parser = argparse.ArgumentParser(description=description)
    for name, help_text in arguments:
        parser.add_argument(name, help=help_text)
    parser.add_argument("--params", default="params.yaml", help="the params file")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        main(params, *(getattr(args, name) for name, _ in arguments))
    except FerDataError as exc:
        exit_with(exc)


def source_params(params: Params, name: str, origin: str = "params.yaml") -> Any:
    """The params of source `name`, or a one-line error naming the known sources."""
    if name not in params.sources:
        raise FerDataError(
            f"{origin}: no source named {name!r} under 'sources' (known: {', '.join(params.sources)})"
        )
    return params.sources[name]


def rewrite_rows(
    in_dir: str | Path,
    writer: DatasetWriter,
    decisions: pd.DataFrame,
    details: Mapping[str, str],
    columns: Sequence[str] = (),
    description: str = "write",
    progress: bool = True,
) -> None:
    """Stream every row of `in_dir` into `writer`, one decision per row in row order.

    `decisions` has one row per input row, in the dataset's order: `id`, `keep` (bool),
    `reason` (for rows not kept; `details[reason]` explains it) and the `columns` added to
    kept rows. Memory is one batch plus the decisions.
    """
    ids = decisions["id"].to_numpy()
    keep = decisions["keep"].to_numpy()
    reasons = decisions["reason"].to_numpy() if "reason" in decisions else None
    added = {c: decisions[c].tolist() for c in columns}
    position = 0
    with tqdm(
        total=len(decisions), desc=description, unit="row", disable=not progress, mininterval=1.0
    ) as bar:
        for batch in iter_batches(in_dir):
            for row in batch.to_pylist():
                if position >= len(ids) or row["id"] != ids[position]:
                    raise FerDataError(
                        f"{in_dir}: changed while it was read (row {row['id']!r}); re-run the stage"
                    )
                if keep[position]:
                    writer.add({**row, **{c: added[c][position] for c in columns}}, row["id"])
                else:
                    reason = str(reasons[position])
                    writer.reject(row["source"], row["id"], row["id"], reason, details[reason])
                position += 1
            bar.update(batch.num_rows)
