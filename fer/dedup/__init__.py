"""Dedup: map labels onto the taxonomy, then find duplicates and related faces across sources.

Two relations decide the data. A duplicate is the same photograph (re-encoded, resized,
re-cropped, recoloured, mirrored): one keeper per group goes on. A related face is another
photograph of the same face (another expression, the next video frame, the same subject): it
goes on, but the split keeps it with its relatives.

The stage streams: the first pass decodes each image once, in worker processes, and keeps only
metadata and hash words in memory; the small grey verification views (2.3 KB a row) go to a
memory-mapped scratch file. Candidate pairs come from the hashes and are decided on those
views; the last pass streams every row again with its group columns into one merged dataset. Nothing is deleted here: rows that should not go on
are flagged (`dedup_keep` false, `dedup_reason`) and the balance stage filters them; only rows
whose label maps to nothing are rejects.
"""

from __future__ import annotations

import mmap
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from fer.config import DedupParams
from fer.dataset import DEDUP_SCHEMA, DatasetWriter, dataset_shards, iter_batches
from fer.dedup.groups import GROUP_COLUMNS, find_groups
from fer.dedup.hashwork import SUB_WINDOWS, HashWorker
from fer.dedup.search import hamming, radius_keys_between, stable_order
from fer.dedup.verify import VIEW_SIDE, similarities
from fer.engine import Engine
from fer.engine.local import LocalEngine
from fer.errors import FerDataError
from fer.hashing import hash_hex
from fer.labels import CLASSES
from fer.parallel import worker_count

__all__ = [
    "GALLERY",
    "RELATED_GALLERY",
    "Decisions",
    "candidate_pairs",
    "decide_pairs",
    "dedup_sources",
    "map_label",
    "related_groups",
]

GALLERY = "duplicates.png"
RELATED_GALLERY = "related.png"
_CHUNK = 512
_PAIR_BATCH = 1024
_HIT_SLICE = 1 << 21
_HASH_VIEWS = ("frame", "frame_mirror", "face", "face_mirror", "shifted", "shifted_mirror")
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
)
_UNMAPPED = object()
_WORD_LAYOUT = {
    # kind: (direct 0 / mirrored 1, first view, views) in a hash task's words; row i's
    # sub-windows are rows i * SUB_WINDOWS + s of their array.
    "frame": (0, 0, 1),
    "frame_mirror": (1, 0, 1),
    "face": (0, 1, 1),
    "face_mirror": (1, 1, 1),
    "shifted": (0, 2, SUB_WINDOWS),
    "shifted_mirror": (1, 2, SUB_WINDOWS),
    "face_shifted": (0, 2 + SUB_WINDOWS, SUB_WINDOWS),
    "face_shifted_mirror": (1, 2 + SUB_WINDOWS, SUB_WINDOWS),
}


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
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Merge the cropped sources into `out_dir` with labels, duplicate and related groups.

    Each face is hashed on two views, its frame as the source gave it (`ingest_dirs`) and its
    face in the crop, each also mirrored. Pairs within the hash radii are candidates; each
    candidate is decided by `fer.dedup.verify`: the same photograph (a duplicate: exact, near
    or mirror) or another photograph of the same face (related). Rows of one source with the
    same `subject` are related without a pixel comparison, unless their pixels are identical.
    The hashing runs on `engine` (default: this process's pool of `params.workers`); every
    engine gives the same bytes.
    """
    engine = engine or LocalEngine()
    names = sorted(crop_dirs)
    missing = [n for n in names if n not in params.label_maps]
    if missing:
        raise FerDataError(
            f"params.yaml: no label map for sources {missing}; add them to label_maps"
        )
    bits = params.hash_size**2
    with tempfile.TemporaryDirectory(prefix="fer-dedup-") as scratch:
        meta, words, pictures, rejects = _first_pass(
            crop_dirs, ingest_dirs, names, params, Path(scratch), progress, engine
        )
        candidates, mirrored = candidate_pairs(words, params, bits)
        # Only the whole views' words are written out; the sub-windows' are most of the memory.
        words = {kind: words[kind] for kind in ("frame", "face")}
        decided = decide_pairs(meta, candidates, mirrored, pictures, params, progress)
        del pictures
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
            "engine": engine.name,
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
    """Candidate pairs (i < j) within the hash radii, and whether each matched mirrored; the
    row numbers are int32 when they fit, and the pairs are sorted by (j, mirrored, i).

    A pair is a candidate when its frame hashes are within `radius_frame`, or its face hashes
    within `radius_face`, or both within `radius_both`; or when one frame is within
    `radius_frame` of a shifted sub-window of the other's frame, or one face view within
    `radius_face` of a sub-window of the other's frame or face view (a photo and a crop of its
    face, cut by boxes a pixel apart). A mirrored candidate compares i's views with j's
    mirrored views; a pair can be both.
    """
    frames, faces = words["frame"], words["face"]
    n, variants, width = len(frames), SUB_WINDOWS, frames.shape[1]
    threads = worker_count(params.workers)
    frame_radius = max(params.radius_frame, params.radius_both)
    face_radius = max(params.radius_face, params.radius_both)
    # A row whose face hash is its frame hash (a tight crop) needs no face query of its own:
    # its face pairs with such rows are frame pairs, and the other rows' queries find the rest.
    own_face = np.flatnonzero((faces != frames).any(axis=1))
    is_own = np.zeros(n, bool)
    is_own[own_face] = True
    # Re-crops: each frame (within radius_frame) and each own face view (within radius_face)
    # against every frame's sub-windows, direct and mirrored; each face against the own face
    # views' sub-windows. Whole views ride along in the direct searches: a probe costs the
    # same whatever the index holds, so one search per query set and direction.
    queries = np.concatenate([frames, faces[own_face]])
    query_rows = np.concatenate([np.arange(n), own_face])
    query_radius = np.concatenate(
        [np.full(n, params.radius_frame), np.full(len(own_face), params.radius_face)]
    )
    own_subs = np.repeat(own_face * variants, variants) + np.tile(
        np.arange(variants), len(own_face)
    )
    whole, shifted = [], []
    for key, flipped in (("shifted", False), ("shifted_mirror", True)):
        # Frames and own face views against every frame's sub-windows (and, direct: frames
        # against frames, direct and mirrored).
        front = [] if flipped else [frames, words["frame_mirror"]]
        index = np.concatenate([*front, words[key]]) if front else words[key]
        lead = 2 * n if front else 0
        found = radius_keys_between(
            queries,
            index,
            max(int(query_radius.max(initial=0)), frame_radius if front else 0),
            bits,
            threads=threads,
        )
        for part in _slices(found):
            query, position = np.divmod(part, len(index))
            distance = hamming(queries[query], index[position])
            sub = position >= lead
            close = sub & (distance <= query_radius[query])
            shifted.append(
                _unordered_keys(
                    query_rows[query[close]], (position[close] - lead) // variants, flipped, n
                )
            )
            hit = ~sub & (query < n) & (distance <= frame_radius)
            whole.append(_whole_keys(query[hit], position[hit], n))
        del found, index
        _release_pages(words[key])
        # Faces against the own face views' sub-windows (and, direct: own face views against
        # faces, direct and mirrored).
        front = [] if flipped else [faces, words["face_mirror"]]
        subs = words[f"face_{key}"].reshape(-1, width)[own_subs]
        _release_pages(words[f"face_{key}"])
        index = np.concatenate([*front, subs]) if front else subs
        del subs
        found = radius_keys_between(
            faces,
            index,
            max(params.radius_face, face_radius if front else 0),
            bits,
            threads=threads,
        )
        for part in _slices(found):
            query, position = np.divmod(part, len(index))
            distance = hamming(faces[query], index[position])
            sub = position >= lead
            close = sub & (distance <= params.radius_face)
            shifted.append(
                _unordered_keys(
                    query[close], own_face[(position[close] - lead) // variants], flipped, n
                )
            )
            hit = ~sub & is_own[query] & (distance <= face_radius)
            whole.append(_whole_keys(query[hit], position[hit], n))
        del found, index
    # Pairs are carried as one int64 key each, (second * 2 + mirror) * n + first: a third of
    # the memory of (first, second, mirror) rows, a sort of keys, not of records, and sorted
    # keys put the pairs sharing one view side by side, the order the verification takes.
    # Whole-view matches: union of frame and face hits, then the three-radius rule.
    matched = []
    for part in _slices(_sorted_unique(whole)):
        flipped, rest = np.divmod(part, n * n)
        first, second = np.divmod(rest, n)
        flipped = flipped.astype(bool)
        frame_other = np.where(flipped[:, None], words["frame_mirror"][second], frames[second])
        face_other = np.where(flipped[:, None], words["face_mirror"][second], faces[second])
        frame_distance = hamming(frames[first], frame_other)
        face_distance = hamming(faces[first], face_other)
        close = (
            (frame_distance <= params.radius_frame)
            | (face_distance <= params.radius_face)
            | ((frame_distance <= params.radius_both) & (face_distance <= params.radius_both))
        )
        matched.append(_unordered_keys(first[close], second[close], flipped[close], n))
    matched.extend(shifted)
    del shifted
    key = _sorted_unique(matched)
    # Row numbers as int32 when they fit: tens of millions of pairs go on to the decisions.
    pairs = np.empty((len(key), 2), np.int32 if n < 2**31 else np.int64)
    np.remainder(key, max(n, 1), out=pairs[:, 0])
    key //= max(n, 1)
    mirror = (key & 1).astype(bool)
    key >>= 1
    pairs[:, 1] = key
    return pairs, mirror


def _slices(values: np.ndarray) -> Iterator[np.ndarray]:
    """Consecutive slices of at most _HIT_SLICE values: the temporaries of a step over tens
    of millions of hits stay a few dozen MB."""
    for start in range(0, len(values), _HIT_SLICE):
        yield values[start : start + _HIT_SLICE]


def _sorted_unique(parts: list[np.ndarray]) -> np.ndarray:
    """`np.unique(np.concatenate(parts))`, sorted in place: at tens of millions of keys
    np.unique's sorted copy and index arrays were the stage's peak memory. Empties `parts`,
    so the pieces are freed once joined."""
    keys = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    parts.clear()
    keys.sort()
    distinct = np.empty(len(keys), bool)
    distinct[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=distinct[1:])
    return keys[distinct]


def _unordered_keys(
    first: np.ndarray, second: np.ndarray, mirror: np.ndarray | bool, n: int
) -> np.ndarray:
    """Keys (j * 2 + mirror) * n + i of the pairs with i < j, self pairs dropped."""
    keep = first != second
    first, second = first[keep], second[keep]
    mirror = mirror[keep] if isinstance(mirror, np.ndarray) else mirror
    low, high = np.minimum(first, second), np.maximum(first, second)
    return (high.astype(np.int64) * 2 + np.asarray(mirror, np.int64)) * n + low


def _whole_keys(query: np.ndarray, position: np.ndarray, n: int) -> np.ndarray:
    """Keys (mirror * n + query) * n + row of whole-view hits: positions into an index of n
    direct then n mirrored whole views."""
    flipped, row = np.divmod(position, max(n, 1))
    return (flipped * n + query) * n + row


def _first_pass(
    crop_dirs: Mapping[str, str | Path],
    ingest_dirs: Mapping[str, str | Path],
    names: list[str],
    params: DedupParams,
    scratch: Path,
    progress: bool,
    engine: Engine,
) -> tuple[pd.DataFrame, dict[str, np.ndarray], np.ndarray, dict[str, tuple[str, str]]]:
    """Metadata, the hash words of every view and the verification views, streamed: the
    hashing runs as engine tasks that read the image bytes themselves, the views are appended
    to a file in `scratch` (the page cache holds them, not this process) and read back
    memory-mapped, and the metadata is kept as Arrow columns (a few dozen bytes per row)."""
    columns: dict[str, list[Any]] = {c: [] for c in _RECORD_COLUMNS}
    rejects: dict[str, tuple[str, str]] = {}
    tasks = [
        task
        for name in names
        for task in _hash_tasks(
            name, crop_dirs[name], ingest_dirs[name], params.label_maps[name], columns, rejects
        )
    ]
    meta = pa.table(
        {c: pa.concat_arrays(v) if v else pa.array([], pa.string()) for c, v in columns.items()}
    )
    total, width = meta.num_rows, max(1, params.hash_size**2 // 64)
    # One contiguous array per kind of hash, filled as results arrive (a single array of every
    # row's words would need copies of its strided sub-window slices for the search). The
    # sub-windows' words (864 bytes a row) are appended to scratch files like the views and
    # read back memory-mapped: the search reads one kind at a time.
    stacked = {
        kind: np.zeros((total, width), np.uint64)
        for kind, (_, _, count) in _WORD_LAYOUT.items()
        if count == 1
    }
    windows = [kind for kind, (_, _, count) in _WORD_LAYOUT.items() if count > 1]
    processes = worker_count(params.workers) if engine.in_process else 1
    factory = partial(HashWorker, params.hash, params.hash_size, params.hash_margin, processes)
    views_file = scratch / "views.u8"
    filled = 0
    with (
        tqdm(
            total=total, desc="dedup hash", unit="img", disable=not progress, mininterval=1.0
        ) as bar,
        open(views_file, "wb") as out,
        ExitStack() as files,
    ):
        window_files = {k: files.enter_context(open(scratch / f"{k}.u64", "wb")) for k in windows}
        for table in engine.map_tasks(factory, tasks):
            rows = table.num_rows
            if not table.column("id").equals(meta.column("id").slice(filled, rows)):
                raise FerDataError(f"dedup: engine {engine.name!r} returned rows out of order")
            block = _fixed_array(table.column("words"), np.uint64).reshape(
                rows, 2, 2 + 2 * SUB_WINDOWS, width
            )
            for kind, (direction, first, count) in _WORD_LAYOUT.items():
                part = block[:, direction, first : first + count].reshape(-1, width)
                if kind in window_files:
                    window_files[kind].write(part.tobytes())
                else:
                    stacked[kind][filled : filled + rows] = part
            out.write(_fixed_array(table.column("views"), np.uint8).tobytes())
            filled += rows
            bar.update(rows)
    for kind in windows:
        stacked[kind] = _mapped(scratch / f"{kind}.u64", np.uint64, (filled * SUB_WINDOWS, width))
    pictures = _mapped(views_file, np.uint8, (filled, 2, VIEW_SIDE, VIEW_SIDE))
    return meta.to_pandas(), stacked, pictures, rejects


def _mapped(path: Path, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """A read-only mapping of a scratch file (zeros when it is empty: nothing to map)."""
    if shape[0] == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape)


def _fixed_array(column: pa.ChunkedArray, dtype: type) -> np.ndarray:
    """The values of a fixed-size binary column as one flat array of `dtype`."""
    array = column.combine_chunks()
    size = array.type.byte_width
    data = np.frombuffer(array.buffers()[1], np.uint8)
    return data[array.offset * size : (array.offset + len(array)) * size].view(dtype)


def _hash_tasks(
    name: str,
    crop_dir: str | Path,
    ingest_dir: str | Path,
    label_map: Mapping[str, str | None],
    columns: dict[str, list[Any]],
    rejects: dict[str, tuple[str, str]],
) -> Iterator[dict[str, Any]]:
    """One hashing task per chunk of a crop shard (`fer.dedup.hashwork`); appends each chunk's
    metadata to `columns` (Arrow arrays, in order) and fills `rejects`. Reads no images."""
    frames = _frame_positions(ingest_dir)
    for shard in dataset_shards(crop_dir):
        start = 0
        for batch in pq.ParquetFile(shard).iter_batches(_CHUNK, columns=list(_META_COLUMNS)):
            ids = batch.column("id").to_pylist()
            source_labels = batch.column("source_label").to_pylist()
            skip, kept, labels, spans = [], [], [], []
            for k, row_id in enumerate(ids):
                label = map_label(source_labels[k], label_map)
                if label is None or label is _UNMAPPED:
                    rejects[row_id] = _label_reject(name, source_labels[k], label)
                    skip.append(k)
                    continue
                frame_shard, row = _frame_position(frames, row_id, ingest_dir)
                if spans and spans[-1][0] == frame_shard:
                    spans[-1][2] = row + 1
                else:
                    spans.append([frame_shard, row, row + 1])
                kept.append(k)
                labels.append(label)
            stop, start = start + batch.num_rows, start
            if kept:
                _append_meta(columns, batch.take(pa.array(kept)), labels)
                yield {
                    "crop": str(Path(shard).resolve()),
                    "start": start,
                    "stop": stop,
                    "skip": skip,
                    "frames": spans,
                }
            start = stop


def _append_meta(columns: dict[str, list[Any]], rows: pa.RecordBatch, labels: list[str]) -> None:
    area = pc.multiply(
        rows.column("original_width").cast(pa.int64()),
        rows.column("original_height").cast(pa.int64()),
    )
    for column, values in (
        ("id", rows.column("id")),
        ("source", rows.column("source")),
        ("label", pa.array(labels, pa.string())),
        ("source_split", rows.column("source_split")),
        ("subject", rows.column("subject")),
        ("pixel_hash", rows.column("pixel_hash")),
        ("area", area),
        ("score", pc.fill_null(rows.column("crop_score").cast(pa.float64()), -1.0)),
    ):
        columns[column].append(values)


def _frame_positions(folder: str | Path) -> Iterator[tuple[str, int, str]]:
    """(shard, row, id) of every ingest row, in order."""
    for shard in dataset_shards(folder):
        ids = pq.read_table(shard, columns=["id"]).column("id").to_pylist()
        path = str(Path(shard).resolve())
        for row, row_id in enumerate(ids):
            yield path, row, row_id


def _frame_position(
    frames: Iterator[tuple[str, int, str]], row_id: str, folder: str | Path
) -> tuple[str, int]:
    # Both datasets are sorted by id and the crop stage only ever drops rows.
    for shard, row, frame_id in frames:
        if frame_id == row_id:
            return shard, row
    raise FerDataError(f"{folder}: has no row {row_id!r}; re-run the ingest and crop stages")


def _label_reject(name: str, source_label: str, label: Any) -> tuple[str, str]:
    if label is None:
        return "dropped_label", f"label_maps.{name} drops {source_label!r}"
    return "unmapped_label", f"label_maps.{name} has no entry for {source_label!r}"


@dataclass(frozen=True)
class Decisions:
    """Candidate pairs sorted into duplicates (with their mirror flag) and related pairs."""

    duplicates: np.ndarray
    duplicate_mirrored: np.ndarray
    related: np.ndarray
    compared: int
    """Candidates whose pixels were compared (the rest were decided by pixel hash or subject)."""
    by_subject: int
    """Candidates decided as related because both rows name the same subject."""


def decide_pairs(
    meta: pd.DataFrame,
    candidates: np.ndarray,
    mirrored: np.ndarray,
    pictures: np.ndarray,
    params: DedupParams,
    progress: bool = False,
) -> Decisions:
    """Duplicate or related, for every candidate pair.

    `pictures` holds every row's verification views, (rows, 2, VIEW_SIDE, VIEW_SIDE): face,
    then frame. Identical pixels are duplicates. Two rows of one source naming the same subject are
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
        return Decisions(empty, np.zeros(0, bool), empty, 0, 0)
    first, second = candidates[:, 0], candidates[:, 1]
    # Integer codes instead of per-candidate string arrays: at tens of millions of candidates
    # the object arrays alone were gigabytes.
    pixels = pd.factorize(meta["pixel_hash"])[0]
    subject = pd.factorize(meta["source"].astype(str) + "\x00" + meta["subject"].astype(str))[0]
    subject[pd.isna(meta["subject"]).to_numpy()] = -1
    source = pd.factorize(meta["source"])[0]
    identical, same_subject, other_subject = (np.empty(len(candidates), bool) for _ in range(3))
    # In slices: the per-candidate gathers of tens of millions of codes were the peak.
    for start in range(0, len(candidates), _HIT_SLICE):
        a, b = first[start : start + _HIT_SLICE], second[start : start + _HIT_SLICE]
        stop = start + len(a)
        identical[start:stop] = pixels[a] == pixels[b]
        # Rows of one source whose subjects are both known need no pixels: the same subject
        # is related, two subjects are two people.
        known = (subject[a] >= 0) & (subject[b] >= 0) & (source[a] == source[b])
        same_subject[start:stop] = known & (subject[a] == subject[b])
        other_subject[start:stop] = known & (subject[a] != subject[b])
    compare = ~identical & ~same_subject & ~other_subject
    # One float per candidate, filled in place (tens of millions at a million rows): identical
    # pixels 2, compared pairs their similarity, the rest -1.
    strength = np.full(len(candidates), -1.0)
    strength[identical] = 2.0
    rows = np.concatenate(
        [
            np.flatnonzero(compare[start : start + _HIT_SLICE]).astype(candidates.dtype) + start
            for start in range(0, len(candidates), _HIT_SLICE)
        ]
    )
    rows = _by_second_view(rows, second, mirrored, len(pictures))
    same_views = np.zeros(len(pictures), bool)
    for k in range(0, len(pictures), 8192):
        part = pictures[k : k + 8192]
        same_views[k : k + len(part)] = (part[:, 0] == part[:, 1]).all(axis=(1, 2))
        _release_pages(pictures)
    score = partial(
        _similarities,
        candidates=candidates,
        mirrored=mirrored,
        pictures=pictures,
        same_views=same_views,
        thresholds=(params.verify_ncc, params.relate_ncc),
    )
    threads = worker_count(params.workers)
    # These small batches use two cores far better from two Python threads (BLAS and FFT
    # release the GIL) than as one product on two BLAS threads.
    with (
        threadpool_limits(1, user_api="blas"),
        ThreadPoolExecutor(threads) as pool,
        tqdm(
            total=len(rows), desc="dedup verify", unit="pair", disable=not progress, mininterval=1.0
        ) as bar,
    ):
        # A bounded window of batches in flight, not one future per batch of all of them.
        window = _PAIR_BATCH * threads * 16
        for start in range(0, len(rows), window):
            batches = [
                rows[k : k + _PAIR_BATCH]
                for k in range(start, min(start + window, len(rows)), _PAIR_BATCH)
            ]
            for chunk, scores in zip(batches, pool.map(score, batches), strict=True):
                strength[chunk] = scores
                bar.update(len(chunk))
    compared = len(rows)
    del rows, score
    passed = identical | (compare & (strength >= params.verify_ncc))
    close = same_subject | (compare & (strength >= params.relate_ncc))
    # Only pairs that passed or are close decide anything: a pair's twin (the same rows,
    # matched the other way) shares its pixel-hash and subject tests, so a twin that is
    # neither never wins over one that is. Keeps the rest of the work to these few rows.
    shown = np.flatnonzero(passed | close)
    size = len(meta)

    def pair_key(at: np.ndarray) -> np.ndarray:
        return first[at].astype(np.int64) * size + second[at]

    # One row per pair: a pair found both directly and mirrored keeps its better match
    # (passed first, then the stronger, then the direct one).
    best = shown[_best_of_twins(pair_key(shown), mirrored[shown], passed[shown], strength[shown])]
    passing = best[passed[best]]
    passing = passing[np.argsort(pair_key(passing), kind="stable")]
    accepted = _join_without_conflicts(
        first[passing], second[passing], strength[passing], subject, pixels
    )
    dup = passing[accepted]
    related = np.concatenate([best[~passed[best] & close[best]], passing[~accepted]])
    # Two known, different subjects of one source are different people: no relation.
    related = related[~other_subject[related]]
    related = related[np.argsort(pair_key(related), kind="stable")]
    return Decisions(
        candidates[dup].astype(np.int64).reshape(-1, 2),
        mirrored[dup] & (strength[dup] < 2.0),
        candidates[related].astype(np.int64).reshape(-1, 2),
        compared,
        int(same_subject.sum()),
    )


def _by_second_view(
    rows: np.ndarray, second: np.ndarray, mirrored: np.ndarray, views: int
) -> np.ndarray:
    """`rows` stably sorted by (second, mirrored): a batch resizes each view it shares once.
    Candidates from `candidate_pairs` come in that order already, so this is only a check."""
    previous = -1
    for start in range(0, len(rows), _HIT_SLICE):
        at = rows[start : start + _HIT_SLICE]
        key = second[at].astype(np.int64) * 2 + mirrored[at]
        if key[0] < previous or (key[1:] < key[:-1]).any():
            break
        previous = int(key[-1])
    else:
        return rows
    key = np.empty(len(rows), np.int64 if views >= 2**30 else np.int32)
    for start in range(0, len(rows), _HIT_SLICE):
        at = rows[start : start + _HIT_SLICE]
        key[start : start + len(at)] = second[at] * 2 + mirrored[at]
    return rows[stable_order(key, max(1, int(2 * views).bit_length()))]


def _release_pages(array: np.ndarray) -> None:
    """Drop this process's mapping of the pages of a memory-mapped file array (the page cache
    keeps them; reading them again is a minor fault). Other arrays: nothing to do."""
    mapping = getattr(array, "_mmap", None)
    if mapping is not None and hasattr(mapping, "madvise"):
        mapping.madvise(mmap.MADV_DONTNEED)


def _best_of_twins(
    key: np.ndarray, mirrored: np.ndarray, passed: np.ndarray, strength: np.ndarray
) -> np.ndarray:
    """Positions of the rows to keep, one per pair key: a key is at most twice among the
    candidates, once direct and once mirrored; of two, keep the one that passed, else the
    stronger, else the direct one."""
    direct, flipped = np.flatnonzero(~mirrored), np.flatnonzero(mirrored)
    direct_keys = key[direct]
    if len(direct_keys) > 1 and not (direct_keys[1:] > direct_keys[:-1]).all():
        order = np.argsort(direct_keys, kind="stable")
        direct, direct_keys = direct[order], direct_keys[order]
    at = np.searchsorted(direct_keys, key[flipped]).clip(max=max(len(direct) - 1, 0))
    twin = (direct_keys[at] == key[flipped]) if len(direct) else np.zeros(len(flipped), bool)
    mine, theirs = flipped[twin], direct[at[twin]]
    wins = (passed[mine] & ~passed[theirs]) | (
        (passed[mine] == passed[theirs]) & (strength[mine] > strength[theirs])
    )
    keep = np.ones(len(key), bool)
    keep[theirs[wins]] = False
    keep[mine[~wins]] = False
    return np.flatnonzero(keep)


def _similarities(
    chunk: np.ndarray,
    candidates: np.ndarray,
    mirrored: np.ndarray,
    pictures: np.ndarray,
    same_views: np.ndarray,
    thresholds: tuple[float, float],
) -> np.ndarray:
    """Best NCC of candidates[chunk] on their face views, and on their frame views where the
    face views fall short of the first threshold (verify_ncc) and the frame view differs from
    the face view on either side (tight crops are their own face view)."""
    first, second, mirror = candidates[chunk, 0], candidates[chunk, 1], mirrored[chunk]
    again_views = ~(same_views[first] & same_views[second])
    # The batch's rows copied out of the views at once, then the mapping let go of: each
    # read of a mapped file maps the pages around it too (the kernel's fault-around, 64 KB),
    # so reading views in place grew the process by ~64 KB per row touched.
    rows, at = np.unique(np.concatenate([first, second]), return_inverse=True)
    views = np.array(pictures[rows])
    _release_pages(pictures)
    first, second = at[: len(first)], at[len(first) :]
    score = similarities(views[:, 0], first, second, mirror, thresholds)
    again = (score < thresholds[0]) & again_views
    if again.any():
        score[again] = np.maximum(
            score[again],
            similarities(views[:, 1], first[again], second[again], mirror[again], thresholds),
        )
    return score


def _join_without_conflicts(
    first: np.ndarray,
    second: np.ndarray,
    strength: np.ndarray,
    keys: np.ndarray,
    pixels: np.ndarray,
) -> np.ndarray:
    """Which duplicate pairs to join, strongest first, so that no group holds two different
    photographs (pixel codes) of one subject key (-1: none)."""
    parent: dict[int, int] = {}
    members: dict[int, dict[int, int]] = {}

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def subjects(x: int) -> dict[int, int]:
        if x not in members:
            members[x] = {} if keys[x] < 0 else {int(keys[x]): int(pixels[x])}
        return members[x]

    accepted = np.zeros(len(first), bool)
    for k in np.argsort(-strength, kind="stable"):
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
    return {
        "candidate_pairs": len(candidates),
        "compared_pairs": decided.compared,
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
    added = pa.Table.from_pandas(meta[columns], preserve_index=False)
    label_index = meta["label"].map({c: k for k, c in enumerate(CLASSES)}).astype(np.int8)
    added = added.append_column("label_index", pa.array(label_index.to_numpy()))
    in_gallery = (
        meta["dup_group"].isin(gallery_groups) | meta["related_group"].isin(gallery_groups)
    ).to_numpy()
    gallery: dict[str, list[tuple[str, bytes]]] = {}
    position = 0
    total = len(meta) + len(rejects)
    with tqdm(
        total=total, desc="dedup write", unit="row", disable=not progress, mininterval=1.0
    ) as bar:
        for name in names:
            for batch in iter_batches(crop_dirs[name]):
                ids = batch.column("id").to_pylist()
                refused = np.array([row_id in rejects for row_id in ids], bool)
                for k in np.flatnonzero(refused):
                    reason, detail = rejects[ids[k]]
                    source = batch.column("source")[int(k)].as_py()
                    writer.reject(source, ids[k], ids[k], reason, detail)
                kept = pa.Table.from_batches([batch]).filter(pa.array(~refused))
                extra = added.slice(position, kept.num_rows)
                table = kept
                for column in extra.column_names:
                    table = table.append_column(column, extra.column(column))
                writer.add_table(table)
                for k in np.flatnonzero(in_gallery[position : position + kept.num_rows]):
                    row = meta.iloc[position + k]
                    data = kept.column("image")[int(k)]["bytes"].as_py()
                    caption = f"{row['source']} {row['label']}"
                    for group in {row["dup_group"], row["related_group"]} & gallery_groups:
                        gallery.setdefault(group, []).append((caption, data))
                position += kept.num_rows
                bar.update(batch.num_rows)
    return gallery
