"""Duplicate groups (connected components), their keepers and label conflicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["GROUP_COLUMNS", "find_groups"]

GROUP_COLUMNS = (
    "dup_group",
    "dup_group_size",
    "dup_kind",
    "dup_keeper",
    "label_conflict",
    "dedup_keep",
    "dedup_reason",
)


def find_groups(
    meta: pd.DataFrame,
    pairs: np.ndarray,
    duplicates: str,
    conflicts: str,
    mirrored: np.ndarray | None = None,
) -> pd.DataFrame:
    """Group columns for each row of `meta` (id, label, pixel_hash, area, score).

    Groups are the connected components of duplicate pairs plus identical pixel hashes, so
    they are transitive. `mirrored` flags the pairs that matched only mirrored: a group with
    one is of kind `mirror`, a group of identical pixels `exact`, any other `near`. A group is named by its smallest id. The keeper is the member with the
    largest original image, then the highest face score, then the smallest id, chosen among
    the members that survive the conflict policy.
    """
    n = len(meta)
    if n == 0:
        return pd.DataFrame(columns=list(GROUP_COLUMNS))
    positions = pd.Series(np.arange(n))
    exact_root = positions.groupby(meta["pixel_hash"].to_numpy()).transform("min").to_numpy()
    exact_edges = np.stack([exact_root, np.arange(n)], axis=1)[exact_root != np.arange(n)]
    edges = np.concatenate([pairs.reshape(-1, 2), exact_edges.astype(np.int64)])
    graph = coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    pairs = pairs.reshape(-1, 2)
    flags = np.zeros(len(pairs), bool) if mirrored is None else np.asarray(mirrored, dtype=bool)
    mirror_components = set(component[pairs[flags, 0]].tolist())
    frame = pd.DataFrame(
        {
            "component": component,
            "id": meta["id"],
            "label": meta["label"],
            "pixel_hash": meta["pixel_hash"],
            "area": meta["area"],
            "score": meta["score"],
        }
    )
    by_group = frame.groupby("component")
    size = by_group["id"].transform("size").to_numpy()
    group_name = by_group["id"].transform("min").to_numpy()
    distinct_pixels = by_group["pixel_hash"].transform("nunique").to_numpy()
    conflict = by_group["label"].transform("nunique").to_numpy() > 1

    label_counts = frame.groupby(["component", "label"]).size().rename("votes").reset_index()
    label_counts["top"] = label_counts.groupby("component")["votes"].transform("max")
    leaders = label_counts[label_counts["votes"] == label_counts["top"]]
    leader_count = leaders.groupby("component")["label"].transform("size")
    unique_leader = leaders[leader_count == 1].set_index("component")["label"]
    majority = frame["component"].map(unique_leader).to_numpy()

    if conflicts == "keep_all":
        eligible = np.ones(n, bool)
    elif conflicts == "drop_group":
        eligible = ~conflict
    else:
        eligible = ~conflict | (frame["label"].to_numpy() == majority)
    ranked = frame.assign(eligible=eligible, neg_area=-frame["area"], neg_score=-frame["score"])
    ranked = ranked.sort_values(
        ["component", "eligible", "neg_area", "neg_score", "id"],
        ascending=[True, False, True, True, True],
    )
    first = ranked.drop_duplicates("component")
    keeper = np.zeros(n, bool)
    keeper[first.index[first["eligible"].to_numpy()]] = True

    keep = eligible & (keeper | (duplicates == "keep"))
    reason = np.where(~eligible, "label_conflict", np.where(keep, "", "duplicate"))
    has_mirror = np.isin(component, list(mirror_components))
    kind = np.where(
        size == 1,
        "",
        np.where(distinct_pixels == 1, "exact", np.where(has_mirror, "mirror", "near")),
    )
    return pd.DataFrame(
        {
            "dup_group": group_name,
            "dup_group_size": size.astype(np.int32),
            "dup_kind": kind,
            "dup_keeper": keeper,
            "label_conflict": conflict,
            "dedup_keep": keep,
            "dedup_reason": reason,
        },
        index=meta.index,
    )
