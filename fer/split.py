"""Split: train/val/test by whole groups, stratified by label, deterministic.

A group (`split_group`) is a related group of the dedup stage (duplicates and other photos of
the same face) joined, with `group_by_subject`, with every row of the same source and subject.
Within each class the groups are ordered by a keyed hash of the group id and laid end to end;
test takes the first stretch of that line, val the next, train the rest, each group going where
its middle falls. So every split is within one group's size of its target, no group is in
two splits, and adding images moves only the groups near a boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from fer.card import CARD_FILE, dataset_card
from fer.config import SplitParams
from fer.dataset import SPLIT_SCHEMA, DatasetWriter, read_rejects, read_table
from fer.errors import FerDataError
from fer.labels import CLASSES
from fer.ranking import id_rank
from fer.stage import rewrite_rows

__all__ = ["COUNTS_FILE", "SPLITS", "assign_splits", "split_dataset", "split_groups"]

COUNTS_FILE = "counts.csv"

SPLITS = ("train", "val", "test")


def assign_splits(
    rows: pd.DataFrame,
    ratios: Mapping[str, float],
    seed: int,
    eval_per_class: int | None = None,
    group_column: str = "split_group",
) -> pd.Series:
    """The split of each row. `rows` needs `label` and `group_column` (a group id per row).

    With `eval_per_class`, val and test get that many rows of every class (as near as whole
    groups allow) and train the rest; otherwise the ratios apply per class.
    """
    if rows.empty:
        return pd.Series([], dtype=object, index=rows.index)
    groups = rows.groupby(group_column, sort=True).agg(
        size=("label", "size"), label=("label", _mode)
    )
    groups["rank"] = id_rank(groups.index, seed)
    groups = groups.sort_values(["label", "rank"], kind="stable")
    split_of_group = {}
    for _, members in groups.groupby("label", sort=True):
        sizes = members["size"].to_numpy()
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        total = int(sizes.sum())
        if eval_per_class is not None:
            test_end = min(eval_per_class, total)
            val_end = min(2 * eval_per_class, total)
        else:
            test_end = total * ratios["test"]
            val_end = test_end + total * ratios["val"]
        middles = starts + sizes / 2
        where = np.where(middles <= test_end, "test", np.where(middles <= val_end, "val", "train"))
        split_of_group.update(zip(members.index, where, strict=True))
    return rows[group_column].map(split_of_group)


def split_groups(rows: pd.DataFrame, by_subject: bool) -> pd.Series:
    """The group each row is split with: its `related_group`, joined (when `by_subject`) with
    every row of the same source and `subject`; named by the smallest related group."""
    n = len(rows)
    position = np.arange(n)
    keys = [rows["related_group"]]
    if by_subject:
        known = rows["subject"].notna()
        keys.append((rows["source"] + "\x00" + rows["subject"].astype(str)).where(known))
    edges = []
    for key in keys:
        valid = key.notna().to_numpy()
        first = pd.Series(position[valid]).groupby(key[valid].to_numpy()).transform("min")
        edges.append(np.stack([first.to_numpy(), position[valid]], axis=1))
    pairs = np.concatenate(edges)
    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    names = pd.Series(rows["related_group"].to_numpy()).groupby(component).transform("min")
    return pd.Series(names.to_numpy(), index=rows.index)


def _mode(labels: pd.Series) -> str:
    counts = labels.value_counts()
    return str(sorted(counts.index[counts == counts.max()])[0])


def split_dataset(
    in_dir: str | Path,
    params: SplitParams,
    out_dir: str | Path,
    shard_bytes: int = 128 * 2**20,
    progress: bool = True,
    licences: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """Write the balanced rows with their `split`, plus `counts.csv` (label x split x source)
    and the dataset card `README.md` (with each source's licence from `licences`)."""
    columns = ["id", "label", "source", "subject", "dup_group", "related_group"]
    meta = read_table(in_dir, columns=columns).to_pandas()
    if meta.empty:
        raise FerDataError(_nothing_left(in_dir))
    meta["split_group"] = split_groups(meta, params.group_by_subject)
    meta["split"] = assign_splits(meta, params.ratios, params.seed, params.eval_per_class)
    counts = (
        meta.groupby(["label", "split", "source"])
        .size()
        .rename("images")
        .reset_index()
        .sort_values(["label", "split", "source"])
        .reset_index(drop=True)
    )
    by_split = meta.groupby(["label", "split"]).size()

    def in_two(column: str) -> int:
        return int((meta.groupby(column)["split"].nunique() > 1).sum())

    subjects = meta[meta["subject"].notna()]
    subject_key = subjects["source"] + "/" + subjects["subject"]
    extra = {
        "ratios": dict(params.ratios),
        "eval_per_class": params.eval_per_class,
        "label_by_split": {
            c: {s: int(by_split.get((c, s), 0)) for s in SPLITS}
            for c in CLASSES
            if c in set(meta["label"])
        },
        "split_totals": {s: int((meta["split"] == s).sum()) for s in SPLITS},
        "group_by_subject": params.group_by_subject,
        "groups_in_two_splits": in_two("split_group"),
        "duplicate_groups_in_two_splits": in_two("dup_group"),
        "related_groups_in_two_splits": in_two("related_group"),
        "multi_image_groups": int((meta.groupby("split_group").size() > 1).sum()),
        "largest_group": int(meta.groupby("split_group").size().max()),
        "subjects_by_split": {
            s: int(subject_key[subjects["split"] == s].nunique()) for s in SPLITS
        },
        "subjects_in_two_splits": int((subjects.groupby(subject_key)["split"].nunique() > 1).sum()),
    }
    decisions = pd.DataFrame(
        {"id": meta["id"], "keep": True, "split_group": meta["split_group"], "split": meta["split"]}
    )
    with DatasetWriter(
        out_dir,
        SPLIT_SCHEMA,
        shard_bytes=shard_bytes,
        summary_fields={"stage": "split", "seed": params.seed},
        count_columns=("label", "split", "source"),
    ) as writer:
        rewrite_rows(
            in_dir,
            writer,
            decisions,
            {},
            ("split_group", "split"),
            description="split",
            progress=progress,
        )
        counts.to_csv(writer.staging_dir / COUNTS_FILE, index=False)
        card = dataset_card(counts, licences or {})
        (writer.staging_dir / CARD_FILE).write_text(card, encoding="utf-8")
        return writer.close(extra)


def _nothing_left(in_dir: str | Path) -> str:
    rejects = read_rejects(in_dir).to_pandas()
    if rejects.empty:
        return f"{in_dir}: holds no rows to split; check the sources and the stages before it"
    lost = []
    for source, rows in rejects.groupby("source", sort=True):
        reasons = rows["reason"].value_counts()
        shown = ", ".join(
            f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda x: (-x[1], x[0]))
        )
        lost.append(f"{source} lost all {len(rows)} rows ({shown})")
    return (
        f"{in_dir}: no rows left to split: {'; '.join(lost)}; see `fer-data stats {in_dir}` and "
        "loosen balance.exclude_crop_status, dedup or crop settings"
    )
