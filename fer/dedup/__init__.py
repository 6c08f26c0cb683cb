"""Dedup: map labels onto the taxonomy, then find duplicates and related faces across sources.

Two relations decide the data. A duplicate is the same photograph (re-encoded, resized,
re-cropped, recoloured, mirrored): one keeper per group goes on. A related face is another
photograph of the same face (another expression, the next video frame, the same subject): it
goes on, but the split keeps it with its relatives.

The stage streams: the first pass hashes each batch of images and keeps only metadata and hash
words; candidate pairs come from the hashes; a verification pass decodes only the rows in
candidate pairs into small views; the last pass streams every row again with its group
columns into one merged dataset. Nothing is deleted here: rows that should not go on
are flagged (`dedup_keep` false, `dedup_reason`) and the balance stage filters them; only rows
whose label maps to nothing are rejects.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm import tqdm

from fer.config import DedupParams
from fer.dataset import DEDUP_SCHEMA, DatasetWriter, count_rows, iter_batches, iter_rows
from fer.dedup.groups import GROUP_COLUMNS, find_groups
from fer.dedup.search import hamming, radius_pairs, radius_pairs_between
from fer.dedup.verify import VIEW_SIDE, pair_similarity, verification_view
from fer.errors import FerDataError
from fer.hashing import hash_arrays, hash_hex, hash_size_of, hashing_input
from fer.labels import CLASSES
from fer.parallel import ordered_map

__all__ = [
    "GALLERY",
    "RELATED_GALLERY",
    "Decisions",
    "candidate_pairs",
    "decide_pairs",
    "dedup_sources",
    "map_label",
    "near_pairs",
    "related_groups",
]

GALLERY = "duplicates.png"
RELATED_GALLERY = "related.png"
_BATCH = 4096
_PAIR_BATCH = 512
_HASH_VIEWS = ("frame", "frame_mirror", "face", "face_mirror", "shifted", "shifted_mirror")
_SHIFT_SIDE = 0.94
_SHIFT_ANCHORS = ((0.5, 0.5), (0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0))
"""Sub-windows hashed per frame (side 94 %, centred and in each corner): a copy re-cropped
by a few percent matches one of them far better than the whole frame."""
_RECORD_COLUMNS = (
    "id",
    "source",
    "label",
    "source_split",
    "subject",
    "pixel_hash",
    "area",
    "score",
)
_META_COLUMNS = (
    "id",
    "source",
    "source_label",
    "source_split",
    "subject",
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
    """Merge the cropped sources into `out_dir` with labels, duplicate and related groups.

    Each face is hashed on two views, its frame as the source gave it (`ingest_dirs`) and its
    face in the crop, each also mirrored. Pairs within the hash radii are candidates; each
    candidate is decided by `fer.dedup.verify`: the same photograph (a duplicate: exact, near
    or mirror) or another photograph of the same face (related). Rows of one source with the
    same `subject` are related without a pixel comparison, unless their pixels are identical.
    """
    names = sorted(crop_dirs)
    missing = [n for n in names if n not in params.label_maps]
    if missing:
        raise FerDataError(
            f"params.yaml: no label map for sources {missing}; add them to label_maps"
        )
    meta, words, views, rejects = _first_pass(crop_dirs, ingest_dirs, names, params, progress)
    bits = params.hash_size**2
    candidates, mirrored = candidate_pairs(words, params, bits)
    decided = decide_pairs(
        meta, candidates, mirrored, crop_dirs, ingest_dirs, names, views, rejects, params
    )
    groups = find_groups(
        meta, decided.duplicates, params.duplicates, params.conflicts, decided.duplicate_mirrored
    )
    meta = pd.concat([meta, groups], axis=1)
    related = related_groups(meta["id"], np.concatenate([decided.duplicates, decided.related]))
    meta = pd.concat([meta, related], axis=1)
    meta["frame_hash"] = hash_hex(words["frame"], bits)
    meta["face_hash"] = hash_hex(words["face"], bits)
    stats = _group_stats(meta, candidates, decided)
    gallery_groups = _largest_groups(meta, "dup_group", params.gallery_groups)
    related_gallery = _largest_groups(meta, "related_group", params.gallery_groups, mixed=True)
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
            "verify_ncc": params.verify_ncc,
            "relate_ncc": params.relate_ncc,
        },
        count_columns=("label", "source"),
    ) as writer:
        gallery = _second_pass(
            crop_dirs, names, meta, rejects, writer, {*gallery_groups, *related_gallery}, progress
        )
        from fer.dedup.gallery import duplicate_gallery, related_gallery_picture

        duplicate_gallery(gallery, gallery_groups, meta, writer.staging_dir / GALLERY)
        related_gallery_picture(
            gallery, related_gallery, meta, writer.staging_dir / RELATED_GALLERY
        )
        return writer.close(stats)


def candidate_pairs(
    words: Mapping[str, np.ndarray], params: DedupParams, bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (i < j) within the hash radii, and whether each matched mirrored.

    A mirrored candidate compares i's views with j's mirrored views; a pair can be both.
    """
    radii = (params.radius_frame, params.radius_face, params.radius_both)
    direct = near_pairs(words["frame"], words["face"], *radii, bits)
    mirror = near_pairs(
        words["frame"], words["face"], *radii, bits, words["frame_mirror"], words["face_mirror"]
    )
    mirror = mirror[mirror[:, 0] != mirror[:, 1]]
    mirror = np.unique(np.sort(mirror, axis=1), axis=0).reshape(-1, 2)
    # Re-crops: a frame against the sub-windows of every other frame (direct and mirrored).
    variants = len(_SHIFT_ANCHORS)
    for key, flag in (("shifted", False), ("shifted_mirror", True)):
        found = radius_pairs_between(words["frame"], words[key], params.radius_frame, bits)
        found[:, 1] //= variants
        found = found[found[:, 0] != found[:, 1]]
        found = np.unique(np.sort(found, axis=1), axis=0).reshape(-1, 2)
        if flag:
            mirror = np.unique(np.concatenate([mirror, found]), axis=0)
        else:
            direct = np.unique(np.concatenate([direct.reshape(-1, 2), found]), axis=0)
    pairs = np.concatenate([direct.reshape(-1, 2), mirror])
    flags = np.concatenate([np.zeros(len(direct), bool), np.ones(len(mirror), bool)])
    return pairs.astype(np.int64), flags


def near_pairs(
    frame_words: np.ndarray,
    face_words: np.ndarray,
    radius_frame: int,
    radius_face: int,
    radius_both: int,
    bits: int,
    other_frames: np.ndarray | None = None,
    other_faces: np.ndarray | None = None,
) -> np.ndarray:
    """Pairs whose frame hashes are within `radius_frame`, or face hashes within
    `radius_face`, or both within `radius_both`; with `other_*`, pairs (i, j) between row i
    and row j of the other words (its mirrored views), i == j included."""
    if other_frames is None or other_faces is None:
        by_frame = radius_pairs(frame_words, max(radius_frame, radius_both), bits)
        by_face = radius_pairs(face_words, max(radius_face, radius_both), bits)
        other_frames, other_faces = frame_words, face_words
    else:
        by_frame = radius_pairs_between(
            frame_words, other_frames, max(radius_frame, radius_both), bits
        )
        by_face = radius_pairs_between(face_words, other_faces, max(radius_face, radius_both), bits)
    candidates = np.unique(np.concatenate([by_frame, by_face]).reshape(-1, 2), axis=0)
    if len(candidates) == 0:
        return candidates
    frame_distance = hamming(frame_words[candidates[:, 0]], other_frames[candidates[:, 1]])
    face_distance = hamming(face_words[candidates[:, 0]], other_faces[candidates[:, 1]])
    close = (
        (frame_distance <= radius_frame)
        | (face_distance <= radius_face)
        | ((frame_distance <= radius_both) & (face_distance <= radius_both))
    )
    return candidates[close]


def _frames(folder: str | Path) -> Iterator[tuple[str, bytes]]:
    for row in iter_rows(folder, ["id", "image"]):
        yield row["id"], row["image"]["bytes"]


def _hash_inputs(item: tuple[bytes, bytes, float], method: str, size: int) -> np.ndarray:
    """The hash inputs of one row: frame, face view, and the frame's shifted sub-windows."""
    frame, face, view = item
    with Image.open(io.BytesIO(frame)) as decoded:
        image = decoded.convert("L")
    inputs = [hashing_input(image, method, size)]
    # One resize to a canvas 1/0.94 larger; each sub-window is then an exact crop of it.
    width, height = hash_size_of(method, size)
    wide_w, wide_h = round(width / _SHIFT_SIDE), round(height / _SHIFT_SIDE)
    wide = np.asarray(image.resize((wide_w, wide_h), Image.Resampling.LANCZOS))
    for fx, fy in _SHIFT_ANCHORS:
        left, top = round((wide_w - width) * fx), round((wide_h - height) * fy)
        inputs.append(wide[top : top + height, left : left + width])
    with Image.open(io.BytesIO(face)) as image:
        inputs.insert(1, hashing_input(image, method, size, view))
    return np.stack(inputs)


def _first_pass(
    crop_dirs: Mapping[str, str | Path],
    ingest_dirs: Mapping[str, str | Path],
    names: list[str],
    params: DedupParams,
    progress: bool,
) -> tuple[pd.DataFrame, dict[str, np.ndarray], np.ndarray, dict[str, tuple[str, str]]]:
    """Metadata, the four hash words per row and its face-view fraction, streamed: image
    bytes live for one batch only."""
    records: list[dict[str, Any]] = []
    words: dict[str, list[np.ndarray]] = {k: [] for k in _HASH_VIEWS}
    views: list[float] = []
    rejects: dict[str, tuple[str, str]] = {}
    hash_inputs = partial(_hash_inputs, method=params.hash, size=params.hash_size)
    total = sum(count_rows(crop_dirs[name]) for name in names)
    with tqdm(
        total=total, desc="dedup hash", unit="img", disable=not progress, mininterval=1.0
    ) as bar:
        for name in names:
            label_map = params.label_maps[name]
            originals = _frames(ingest_dirs[name])
            for batch in iter_batches(crop_dirs[name], _META_COLUMNS, batch_size=_BATCH):
                items = []
                for row in batch.to_pylist():
                    label = map_label(row["source_label"], label_map)
                    if label is None or label is _UNMAPPED:
                        rejects[row["id"]] = _label_reject(name, row["source_label"], label)
                        continue
                    view = _hash_view(row, params.hash_margin)
                    frame = _frame_of(originals, row["id"], ingest_dirs[name])
                    items.append((frame, row["image"]["bytes"], view))
                    views.append(view)
                    records.append(
                        {
                            "id": row["id"],
                            "source": row["source"],
                            "label": label,
                            "source_split": row["source_split"],
                            "subject": row["subject"],
                            "pixel_hash": row["pixel_hash"],
                            "area": int(row["original_width"]) * int(row["original_height"]),
                            "score": row["crop_score"] if row["crop_score"] is not None else -1.0,
                        }
                    )
                if items:
                    inputs = np.stack(
                        list(
                            ordered_map(
                                hash_inputs, items, params.workers, chunksize=256, serial_below=1024
                            )
                        )
                    )
                    frames, faces = inputs[:, 0], inputs[:, 1]
                    shifted = inputs[:, 2:].reshape(-1, *inputs.shape[2:])  # row-major
                    for key, stack in (
                        ("frame", frames),
                        ("frame_mirror", frames[:, :, ::-1]),
                        ("face", faces),
                        ("face_mirror", faces[:, :, ::-1]),
                        ("shifted", shifted),
                        ("shifted_mirror", shifted[:, :, ::-1]),
                    ):
                        words[key].append(hash_arrays(stack, params.hash, params.hash_size))
                bar.update(batch.num_rows)
    meta = pd.DataFrame.from_records(records, columns=list(_RECORD_COLUMNS))
    width = max(1, params.hash_size**2 // 64)
    stacked = {
        k: np.concatenate(v) if v else np.zeros((0, width), np.uint64) for k, v in words.items()
    }
    return meta, stacked, np.array(views, dtype=np.float64), rejects


def _label_reject(name: str, source_label: str, label: Any) -> tuple[str, str]:
    if label is None:
        return "dropped_label", f"label_maps.{name} drops {source_label!r}"
    return "unmapped_label", f"label_maps.{name} has no entry for {source_label!r}"


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


@dataclass(frozen=True)
class Decisions:
    """Candidate pairs sorted into duplicates (with their mirror flag) and related pairs."""

    duplicates: np.ndarray
    duplicate_mirrored: np.ndarray
    related: np.ndarray
    similarity: np.ndarray
    """Best NCC of every candidate (NaN where no pixels were compared)."""
    by_subject: int
    """Candidates decided as related because both rows name the same subject."""


def decide_pairs(
    meta: pd.DataFrame,
    candidates: np.ndarray,
    mirrored: np.ndarray,
    crop_dirs: Mapping[str, str | Path],
    ingest_dirs: Mapping[str, str | Path],
    names: list[str],
    views: np.ndarray,
    rejects: Mapping[str, tuple[str, str]],
    params: DedupParams,
) -> Decisions:
    """Duplicate or related, for every candidate pair.

    Identical pixels are duplicates. Two rows of one source naming the same subject are
    related without a comparison (a lab set holds no re-encoded copies of its own frames, and
    consecutive video frames can be closer than a JPEG copy); two naming different subjects
    are different people. Every other candidate is
    compared on its face views and its frame views; the better NCC decides: `verify_ncc` or
    more is a duplicate, `relate_ncc` or more related, less nothing. Duplicate pairs
    are then joined strongest first, and a pair that would put two different photographs of
    one subject into one duplicate group (a copy matching two near-identical frames) is
    related instead.
    """
    if len(candidates) == 0:
        empty = np.zeros((0, 2), np.int64)
        return Decisions(empty, np.zeros(0, bool), empty, np.zeros(0), 0)
    first, second = candidates[:, 0], candidates[:, 1]
    pixels = meta["pixel_hash"].to_numpy()
    identical = pixels[first] == pixels[second]
    subject = meta["subject"].to_numpy(dtype=object)
    source = meta["source"].to_numpy()
    known = pd.notna(subject[first]) & pd.notna(subject[second]) & (source[first] == source[second])
    same_subject = known & (subject[first] == subject[second])
    other_subject = known & (subject[first] != subject[second])
    # Rows of one source whose subjects are both known need no pixels: the same subject is
    # related, two subjects are two people.
    compare = ~identical & ~known
    similarity = np.full(len(candidates), np.nan)
    needed = np.unique(candidates[compare])
    if len(needed):
        faces, frames = _verification_views(
            crop_dirs, ingest_dirs, names, views, rejects, needed, params.workers
        )
        index = np.searchsorted(needed, candidates)
        rows = np.flatnonzero(compare)
        for start in range(0, len(rows), _PAIR_BATCH):
            chunk = rows[start : start + _PAIR_BATCH]
            a, b = index[chunk, 0], index[chunk, 1]
            score = pair_similarity(faces[a], faces[b], mirrored[chunk])
            # The frame view only matters where the face view did not already pass.
            again = score < params.verify_ncc
            if again.any():
                score[again] = np.maximum(
                    score[again],
                    pair_similarity(frames[a[again]], frames[b[again]], mirrored[chunk][again]),
                )
            similarity[chunk] = score
    strength = np.where(identical, 2.0, np.where(compare, similarity, -1.0))
    passed = identical | (compare & (similarity >= params.verify_ncc))
    # One row per pair: a pair found both directly and mirrored keeps its better match.
    close = same_subject | (compare & (similarity >= params.relate_ncc))
    frame = pd.DataFrame(
        {
            "i": first,
            "j": second,
            "strength": strength,
            "passed": passed,
            "close": close,
            "mirror": mirrored,
        }
    ).sort_values(
        ["i", "j", "passed", "strength", "mirror"], ascending=[True, True, False, False, True]
    )
    best = frame.drop_duplicates(["i", "j"])
    keys = np.where(
        pd.notna(meta["subject"]), meta["source"] + "\x00" + meta["subject"].astype(str), None
    )
    passing = best[best["passed"]]
    accepted = _join_without_conflicts(passing, keys, pixels)
    dup = passing[accepted].sort_values(["i", "j"])
    related = pd.concat([best[~best["passed"] & best["close"]], passing[~accepted]])
    # Two known, different subjects of one source are different people: no relation.
    size = len(meta)
    different = candidates[other_subject]
    pair_key = related["i"].to_numpy() * size + related["j"].to_numpy()
    related = related[~np.isin(pair_key, different[:, 0] * size + different[:, 1])]
    related = related.sort_values(["i", "j"])
    return Decisions(
        dup[["i", "j"]].to_numpy(np.int64).reshape(-1, 2),
        (dup["mirror"] & (dup["strength"] < 2.0)).to_numpy(),
        related[["i", "j"]].to_numpy(np.int64).reshape(-1, 2),
        similarity,
        int(same_subject.sum()),
    )


def _join_without_conflicts(
    pairs: pd.DataFrame, keys: np.ndarray, pixels: np.ndarray
) -> np.ndarray:
    """Which duplicate pairs to join, strongest first, so that no group holds two different
    photographs (pixel hashes) of one subject key."""
    parent: dict[int, int] = {}
    members: dict[int, dict[str, str]] = {}

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def subjects(x: int) -> dict[str, str]:
        if x not in members:
            members[x] = {} if keys[x] is None else {keys[x]: pixels[x]}
        return members[x]

    accepted = np.zeros(len(pairs), bool)
    order = np.argsort(-pairs["strength"].to_numpy(), kind="stable")
    first, second = pairs["i"].to_numpy(), pairs["j"].to_numpy()
    for k in order:
        a, b = root(int(first[k])), root(int(second[k]))
        if a != b:
            left, right = subjects(a), subjects(b)
            if any(key in right and right[key] != pixel for key, pixel in left.items()):
                continue
            parent[b] = a
            members[a] = {**right, **left}
            members.pop(b, None)
        accepted[k] = True
    return accepted


def _verification_views(
    crop_dirs: Mapping[str, str | Path],
    ingest_dirs: Mapping[str, str | Path],
    names: list[str],
    views: np.ndarray,
    rejects: Mapping[str, tuple[str, str]],
    needed: np.ndarray,
    workers: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Face and frame verification views of the rows at positions `needed` (sorted),
    streamed from the crop and ingest outputs."""
    wanted = set(needed.tolist())
    faces = np.zeros((len(needed), VIEW_SIDE, VIEW_SIDE), np.uint8)
    frames = np.zeros_like(faces)
    position, filled = 0, 0
    for name in names:
        originals = _frames(ingest_dirs[name])
        for batch in iter_batches(crop_dirs[name], ["id", "image"], batch_size=_BATCH):
            items = []
            for row in batch.to_pylist():
                if row["id"] in rejects:
                    continue
                if position in wanted:
                    frame = _frame_of(originals, row["id"], ingest_dirs[name])
                    items.append((row["image"]["bytes"], float(views[position]), frame))
                position += 1
            for face, frame in ordered_map(
                _views_of, items, workers, chunksize=256, serial_below=1024
            ):
                faces[filled], frames[filled] = face, frame
                filled += 1
    return faces, frames


def _views_of(item: tuple[bytes, float, bytes]) -> tuple[np.ndarray, np.ndarray]:
    return verification_view(item[0], item[1]), verification_view(item[2])


def related_groups(ids: pd.Series, pairs: np.ndarray) -> pd.DataFrame:
    """`related_group` (named by its smallest id) and its size: connected components of
    duplicate and related pairs."""
    n = len(ids)
    edges = pairs.reshape(-1, 2)
    graph = coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    frame = pd.DataFrame({"component": component, "id": ids.to_numpy()}, index=ids.index)
    by_component = frame.groupby("component")["id"]
    return pd.DataFrame(
        {
            "related_group": by_component.transform("min"),
            "related_group_size": by_component.transform("size").astype(np.int32),
        },
        index=ids.index,
    )


def _group_stats(meta: pd.DataFrame, candidates: np.ndarray, decided: Decisions) -> dict[str, Any]:
    grouped = meta[meta["dup_group_size"] > 1]
    per_group = grouped.groupby("dup_group").agg(
        size=("id", "size"),
        sources=("source", "nunique"),
        kind=("dup_kind", "first"),
        conflict=("label_conflict", "any"),
    )
    related = meta[meta["related_group_size"] > 1]
    spanning, related_spanning = {}, {}
    for source in sorted(meta.loc[meta["source_split"].notna(), "source"].unique()):
        rows = grouped[grouped["source"] == source]
        spanning[source] = int((rows.groupby("dup_group")["source_split"].nunique() > 1).sum())
        rows = related[related["source"] == source]
        related_spanning[source] = int(
            (rows.groupby("related_group")["source_split"].nunique() > 1).sum()
        )
    kept = meta["dedup_keep"]
    compared = decided.similarity[~np.isnan(decided.similarity)]
    return {
        "candidate_pairs": len(candidates),
        "compared_pairs": len(compared),
        "duplicate_pairs": len(decided.duplicates),
        "mirror_pairs": int(decided.duplicate_mirrored.sum()),
        "related_pairs": len(decided.related),
        "related_by_subject": decided.by_subject,
        "duplicate_groups": len(per_group),
        "images_in_groups": int(per_group["size"].sum()) if len(per_group) else 0,
        "largest_group": int(per_group["size"].max()) if len(per_group) else 0,
        "groups_by_kind": {
            "exact": int((per_group["kind"] == "exact").sum()),
            "near": int((per_group["kind"] == "near").sum()),
            "mirror": int((per_group["kind"] == "mirror").sum()),
            "within_source": int((per_group["sources"] == 1).sum()),
            "across_sources": int((per_group["sources"] > 1).sum()),
            "conflicting_labels": int(per_group["conflict"].sum()),
        },
        "groups_spanning_source_splits": spanning,
        "related_groups": int(related["related_group"].nunique()),
        "images_in_related_groups": len(related),
        "largest_related_group": int(meta["related_group_size"].max()) if len(meta) else 0,
        "related_groups_spanning_source_splits": related_spanning,
        "subjects": int(meta["subject"].nunique()),
        "going_on": int(kept.sum()),
        "not_going_on_by_reason": {
            str(k): int(v)
            for k, v in meta.loc[~kept, "dedup_reason"].value_counts().sort_index().items()
        },
        "going_on_by_label": {c: int(((meta["label"] == c) & kept).sum()) for c in CLASSES},
    }


def _largest_groups(meta: pd.DataFrame, column: str, count: int, mixed: bool = False) -> list[str]:
    """The `count` largest groups of `column`; with `mixed`, only groups holding more than one
    duplicate group (related faces, not just copies)."""
    size = f"{column}_size"
    rows = meta[meta[size] > 1]
    if mixed:
        distinct = rows.groupby(column)["dup_group"].nunique()
        rows = rows[rows[column].map(distinct) > 1]
    sizes = rows[[column, size]].drop_duplicates()
    ordered = sizes.sort_values([size, column], ascending=[False, True])
    return ordered[column].head(count).tolist()


def _second_pass(
    crop_dirs: Mapping[str, str | Path],
    names: list[str],
    meta: pd.DataFrame,
    rejects: dict[str, tuple[str, str]],
    writer: DatasetWriter,
    gallery_groups: set[str],
    progress: bool,
) -> dict[str, list[tuple[str, bytes]]]:
    columns = [
        "label",
        "frame_hash",
        "face_hash",
        "related_group",
        "related_group_size",
        *GROUP_COLUMNS,
    ]
    extra = meta[["id", *columns]].to_dict("records")
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
                    caption = f"{row['source']} {added['label']}"
                    for group in {added["dup_group"], added["related_group"]} & gallery_groups:
                        gallery.setdefault(group, []).append((caption, row["image"]["bytes"]))
                bar.update(batch.num_rows)
    return gallery
