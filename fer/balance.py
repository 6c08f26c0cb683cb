"""Balance: choose a class-balanced subset of the de-duplicated rows, stable under additions.

Rows are ranked by a keyed hash of their id (BLAKE2b keyed by the seed), never by a random draw:
the same inputs give the same selection, and adding images changes it only where a new image
outranks a selected one (bottom-k sampling).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fer.config import BalanceParams
from fer.dataset import DEDUP_SCHEMA, DatasetWriter, read_table
from fer.labels import CLASSES
from fer.ranking import id_rank
from fer.stage import rewrite_rows

__all__ = ["balance_dataset", "select_balanced"]


def select_balanced(
    rows: pd.DataFrame,
    per_class: int | Mapping[str, int] | None,
    seed: int,
    mix: str = "proportional",
    prefer: Sequence[str] = (),
) -> pd.Series:
    """Boolean mask of the rows to keep: at most `per_class` per `label` (one number, or a
    cap per label; labels without one are not capped).

    `rows` needs `id`, `label` and `source`. `proportional` takes the lowest-ranked rows of the
    class whatever their source, so sources contribute in proportion to their size;
    `prefer` exhausts the sources in the given order first (unlisted sources come last, by name).
    """
    if per_class is None or rows.empty:
        return pd.Series(True, index=rows.index)
    frame = rows[["id", "label", "source"]].copy()
    frame["rank"] = id_rank(frame["id"], seed)
    if mix == "prefer":
        order = {source: i for i, source in enumerate(prefer)}
        frame["priority"] = frame["source"].map(lambda s: order.get(s, len(order)))
        sort = ["label", "priority", "source", "rank", "id"]
    else:
        sort = ["label", "rank", "id"]
    ordered = frame.sort_values(sort, kind="stable")
    position = ordered.groupby("label").cumcount()
    chosen = pd.Series(False, index=rows.index)
    if isinstance(per_class, Mapping):
        caps = ordered["label"].map(dict(per_class)).astype("float64").fillna(np.inf).to_numpy()
    else:
        caps = per_class
    chosen[ordered.index[position.to_numpy() < caps]] = True
    return chosen


def balance_dataset(
    in_dir: str | Path,
    params: BalanceParams,
    out_dir: str | Path,
    shard_bytes: int = 128 * 2**20,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the balanced subset of a dedup output; every row left out is a counted reject."""
    meta = read_table(
        in_dir, columns=["id", "label", "source", "dedup_keep", "dedup_reason", "crop_status"]
    )
    meta = meta.to_pandas()
    excluded_status = meta["crop_status"].isin(params.exclude_crop_status)
    eligible = meta["dedup_keep"] & ~excluded_status
    reason = pd.Series("", index=meta.index, dtype=object)
    reason[~meta["dedup_keep"]] = meta.loc[~meta["dedup_keep"], "dedup_reason"]
    reason[meta["dedup_keep"] & excluded_status] = (
        "crop_" + meta.loc[meta["dedup_keep"] & excluded_status, "crop_status"]
    )
    chosen = pd.Series(False, index=meta.index)
    chosen[eligible] = select_balanced(
        meta[eligible], params.per_class, params.seed, params.mix, params.prefer
    )
    reason[eligible & ~chosen] = "over_class_cap"
    available = meta[eligible].groupby("label").size()
    selected = meta[chosen].groupby("label").size()
    below = {c: int(available.get(c, 0)) for c in CLASSES if available.get(c, 0) < params.floor}
    extra = {
        "per_class": params.per_class,
        "floor": params.floor,
        "mix": params.mix,
        "available_by_label": {c: int(available.get(c, 0)) for c in CLASSES},
        "selected_by_label": {c: int(selected.get(c, 0)) for c in CLASSES},
        "selected_by_label_and_source": {
            c: {
                s: int(n)
                for s, n in meta[chosen & (meta["label"] == c)].groupby("source").size().items()
            }
            for c in CLASSES
        },
        "warnings": [
            f"class {c!r} has {n} eligible images, below the floor of {params.floor}"
            for c, n in below.items()
        ],
    }
    decisions = pd.DataFrame({"id": meta["id"], "keep": chosen, "reason": reason})
    with DatasetWriter(
        out_dir,
        DEDUP_SCHEMA,
        shard_bytes=shard_bytes,
        summary_fields={"stage": "balance", "seed": params.seed},
        count_columns=("label", "source"),
    ) as writer:
        rewrite_rows(
            in_dir, writer, decisions, _Details(), description="balance", progress=progress
        )
        return writer.close(extra)


_DETAILS = {
    "duplicate": "not the keeper of its duplicate group (dedup)",
    "label_conflict": "its duplicate group's labels disagree (dedup.conflicts)",
    "over_class_cap": "its class already has balance.per_class images of lower rank",
}


class _Details(dict):
    def __missing__(self, reason: str) -> str:
        if reason.startswith("crop_"):
            return f"crop_status {reason[5:]} is in balance.exclude_crop_status"
        return _DETAILS[reason]
