"""Dedup: map labels onto the taxonomy, then group exact and near duplicates across sources.

Two passes over the cropped sources keep memory flat: the first reads metadata and hashes the
faces, the groups are computed on those, the second streams every row again with its
duplicate columns into one merged dataset. Nothing is deleted here: rows that should not go on
are flagged (`dedup_keep` false, `dedup_reason`) and the balance stage filters them; only rows
whose label maps to nothing are rejects.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from fer.config import DedupParams
from fer.dataset import DEDUP_SCHEMA, DatasetWriter, iter_batches, iter_rows
from fer.dedup.groups import GROUP_COLUMNS, find_groups
from fer.dedup.search import hamming, radius_pairs
from fer.errors import FerDataError
from fer.hashing import hash_hex, hash_image_bytes
from fer.labels import CLASSES

__all__ = ["GALLERY", "dedup_sources", "map_label", "near_pairs"]

GALLERY = "duplicates.png"
_META_COLUMNS = (
    "id",
    "source",
    "source_label",
    "source_split",
    "width",
    "height",
    "original_width",
    "original_height",
    "crop_score",
    "crop_box",
    "crop_window",
    "pixel_hash",
    "image",
)
_UNMAPPED = object()


def map_label(source_label: str, label_map: Mapping[str, str | None]) -> Any:
    """The canonical class, None when the map drops the label, or _UNMAPPED when it has none."""
    if source_label in label_map:
        return label_map[source_label]
    lowered = source_label.strip().lower()
    return label_map.get(lowered, _UNMAPPED)


def dedup_sources(
    crop_dirs: Mapping[str, str | Path],
    ingest_dirs: Mapping[str, str | Path],
    params: DedupParams,
    out_dir: str | Path,
    shard_bytes: int = 128 * 2**20,
    progress: bool = True,
) -> dict[str, Any]:
    """Merge the cropped sources into `out_dir` with labels and duplicate groups.

    Each face is hashed twice: its frame as the source gave it (`ingest_dirs`), which finds
    copies framed alike without detector jitter, and its face view in the crop, which finds
    copies that sources framed differently. Near pairs of either kind join a group.
    """
    names = sorted(crop_dirs)
    missing = [n for n in names if n not in params.label_maps]
    if missing:
        raise FerDataError(
            f"params.yaml: no label map for sources {missing}; add them to label_maps"
        )
    meta, frame_words, face_words, rejects = _first_pass(
        crop_dirs, ingest_dirs, names, params, progress
    )
    bits = params.hash_size**2
    pairs = near_pairs(
        frame_words, face_words, params.radius_frame, params.radius_face, params.radius_both, bits
    )
    groups = find_groups(meta, pairs, params.duplicates, params.conflicts)
    meta = pd.concat([meta, groups], axis=1)
    meta["frame_hash"] = hash_hex(frame_words, bits)
    meta["face_hash"] = hash_hex(face_words, bits)
    stats = _group_stats(meta, pairs)
    gallery_groups = _largest_groups(meta, params.gallery_groups)
    with DatasetWriter(
        out_dir,
        DEDUP_SCHEMA,
        shard_bytes=shard_bytes,
        summary_fields={
            "stage": "dedup",
            "sources": names,
            "hash": params.hash,
            "hash_bits": bits,
            "radius_frame": params.radius_frame,
            "radius_face": params.radius_face,
            "radius_both": params.radius_both,
        },
        count_columns=("label", "source"),
    ) as writer:
        gallery = _second_pass(crop_dirs, names, meta, rejects, writer, gallery_groups, progress)
        from fer.dedup.gallery import duplicate_gallery

        duplicate_gallery(gallery, gallery_groups, meta, writer.staging_dir / GALLERY)
        return writer.close(stats)


def near_pairs(
    frame_words: np.ndarray,
    face_words: np.ndarray,
    radius_frame: int,
    radius_face: int,
    radius_both: int,
    bits: int,
) -> np.ndarray:
    """Pairs whose frame hashes are within `radius_frame`, or face hashes within
    `radius_face`, or both within `radius_both`."""
    by_frame = radius_pairs(frame_words, max(radius_frame, radius_both), bits)
    by_face = radius_pairs(face_words, max(radius_face, radius_both), bits)
    candidates = np.unique(np.concatenate([by_frame, by_face]).reshape(-1, 2), axis=0)
    if len(candidates) == 0:
        return candidates
    frame_distance = hamming(frame_words[candidates[:, 0]], frame_words[candidates[:, 1]])
    face_distance = hamming(face_words[candidates[:, 0]], face_words[candidates[:, 1]])
    close = (
        (frame_distance <= radius_frame)
        | (face_distance <= radius_face)
        | ((frame_distance <= radius_both) & (face_distance <= radius_both))
    )
    return candidates[close]


def _frames(folder: str | Path) -> Iterator[tuple[str, bytes]]:
    for row in iter_rows(folder, ["id", "image"]):
        yield row["id"], row["image"]["bytes"]


def _first_pass(
    crop_dirs: Mapping[str, str | Path],
    ingest_dirs: Mapping[str, str | Path],
    names: list[str],
    params: DedupParams,
    progress: bool,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, dict[str, tuple[str, str]]]:
    records: list[dict[str, Any]] = []
    faces: list[bytes] = []
    frames: list[bytes] = []
    views: list[float] = []
    rejects: dict[str, tuple[str, str]] = {}
    for name in names:
        label_map = params.label_maps[name]
        originals = _frames(ingest_dirs[name])
        for row in iter_rows(crop_dirs[name], _META_COLUMNS, batch_size=2048):
            label = map_label(row["source_label"], label_map)
            if label is None or label is _UNMAPPED:
                reason = "dropped_label" if label is None else "unmapped_label"
                detail = (
                    f"label_maps.{name} drops {row['source_label']!r}"
                    if label is None
                    else f"label_maps.{name} has no entry for {row['source_label']!r}"
                )
                rejects[row["id"]] = (reason, detail)
                continue
            frames.append(_frame_of(originals, row["id"], ingest_dirs[name]))
            faces.append(row["image"]["bytes"])
            views.append(_hash_view(row, params.hash_margin))
            records.append(
                {
                    "id": row["id"],
                    "source": row["source"],
                    "label": label,
                    "source_split": row["source_split"],
                    "pixel_hash": row["pixel_hash"],
                    "area": int(row["original_width"]) * int(row["original_height"]),
                    "score": row["crop_score"] if row["crop_score"] is not None else -1.0,
                }
            )
    meta = pd.DataFrame.from_records(
        records, columns=["id", "source", "label", "source_split", "pixel_hash", "area", "score"]
    )
    if progress:
        tqdm.write(
            f"dedup: hashing {len(faces)} frames and faces ({params.hash}, {params.hash_size**2} bits)",
            file=sys.stderr,
        )
    method, size, workers = params.hash, params.hash_size, params.workers
    frame_words = hash_image_bytes(frames, [1.0] * len(frames), method, size, workers)
    face_words = hash_image_bytes(faces, views, method, size, workers)
    return meta, frame_words, face_words, rejects


def _frame_of(originals: Iterator[tuple[str, bytes]], row_id: str, folder: str | Path) -> bytes:
    # Both datasets are sorted by id and the crop stage only ever drops rows.
    for original_id, data in originals:
        if original_id == row_id:
            return data
    raise FerDataError(f"{folder}: has no row {row_id!r}; re-run the ingest and crop stages")


def _hash_view(row: dict[str, Any], margin: float) -> float:
    box, window = row.get("crop_box"), row.get("crop_window")
    if not box or not window or not window["side"]:
        return 1.0
    return min(1.0, max(box["w"], box["h"]) / window["side"] * (1 + 2 * margin))


def _group_stats(meta: pd.DataFrame, pairs: np.ndarray) -> dict[str, Any]:
    grouped = meta[meta["dup_group_size"] > 1]
    per_group = grouped.groupby("dup_group").agg(
        size=("id", "size"),
        sources=("source", "nunique"),
        kind=("dup_kind", "first"),
        conflict=("label_conflict", "any"),
    )
    spanning = {}
    for source in sorted(grouped.loc[grouped["source_split"].notna(), "source"].unique()):
        rows = grouped[grouped["source"] == source]
        splits = rows.groupby("dup_group")["source_split"].nunique()
        spanning[source] = int((splits > 1).sum())
    kept = meta["dedup_keep"]
    return {
        "duplicate_pairs": len(pairs),
        "duplicate_groups": len(per_group),
        "images_in_groups": int(per_group["size"].sum()) if len(per_group) else 0,
        "largest_group": int(per_group["size"].max()) if len(per_group) else 0,
        "groups_by_kind": {
            "exact": int((per_group["kind"] == "exact").sum()),
            "near": int((per_group["kind"] == "near").sum()),
            "within_source": int((per_group["sources"] == 1).sum()),
            "across_sources": int((per_group["sources"] > 1).sum()),
            "conflicting_labels": int(per_group["conflict"].sum()),
        },
        "groups_spanning_source_splits": spanning,
        "going_on": int(kept.sum()),
        "not_going_on_by_reason": {
            str(k): int(v)
            for k, v in meta.loc[~kept, "dedup_reason"].value_counts().sort_index().items()
        },
        "going_on_by_label": {c: int(((meta["label"] == c) & kept).sum()) for c in CLASSES},
    }


def _largest_groups(meta: pd.DataFrame, count: int) -> list[str]:
    sizes = meta.loc[meta["dup_group_size"] > 1, ["dup_group", "dup_group_size"]].drop_duplicates()
    ordered = sizes.sort_values(["dup_group_size", "dup_group"], ascending=[False, True])
    return ordered["dup_group"].head(count).tolist()


def _second_pass(
    crop_dirs: Mapping[str, str | Path],
    names: list[str],
    meta: pd.DataFrame,
    rejects: dict[str, tuple[str, str]],
    writer: DatasetWriter,
    gallery_groups: list[str],
    progress: bool,
) -> dict[str, list[tuple[str, bytes]]]:
    columns = ["label", "frame_hash", "face_hash", *GROUP_COLUMNS]
    extra = meta[["id", *columns]].to_dict("records")
    wanted = set(gallery_groups)
    gallery: dict[str, list[tuple[str, bytes]]] = {}
    position = 0
    total = len(meta) + len(rejects)
    with tqdm(
        total=total, desc="dedup write", unit="row", disable=not progress, mininterval=1.0
    ) as bar:
        for name in names:
            for batch in iter_batches(crop_dirs[name]):
                for row in batch.to_pylist():
                    if row["id"] in rejects:
                        reason, detail = rejects[row["id"]]
                        writer.reject(row["source"], row["id"], row["id"], reason, detail)
                        continue
                    added = extra[position]
                    position += 1
                    added["label_index"] = CLASSES.index(added["label"])
                    writer.add({**row, **added}, row["id"])
                    if added["dup_group"] in wanted:
                        gallery.setdefault(added["dup_group"], []).append(
                            (f"{row['source']} {added['label']}", row["image"]["bytes"])
                        )
                bar.update(batch.num_rows)
    return gallery
