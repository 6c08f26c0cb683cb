"""All pairs of hashes within a Hamming radius: exact, and far from quadratic.

Multi-index hashing (Norouzi, Punjani & Fleet, 2012): split each b-bit hash into m chunks.
Two hashes within distance r agree to within floor(r / m) bits on at least one chunk
(pigeonhole), so for every chunk we index the hashes by chunk value and, per hash, look up
every chunk value within that small distance. Candidates are checked with a full XOR/popcount, and a pair
is kept only by the first chunk that finds it (no earlier chunk within floor(r / m) bits), so
the chunks' results are disjoint and need no de-duplication of everything found. For one-word
hashes (64 bits and fewer) each block of queries runs as a compiled loop (`fer.dedup.kernels`);
longer hashes are vectorised over blocks of queries. m is chosen by a cost model for the given
n, bits and radius. `brute_force_pairs` is the blocked reference.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from itertools import combinations, pairwise
from typing import NamedTuple

import numpy as np

__all__ = [
    "brute_force_pairs",
    "hamming",
    "pairs_of_keys",
    "radius_keys_between",
    "radius_pairs",
    "radius_pairs_between",
    "stable_order",
]

_MAX_CHUNK_BITS = 26  # bucket index arrays of 2^26 int32 stay under 256 MiB
_MAX_EXPANDED = 1 << 19
"""Candidates checked at once per thread (a few dozen MB of temporaries)."""


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distances between rows of two (n, words) uint64 arrays."""
    return np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=-1, dtype=np.int64)


def brute_force_pairs(hashes: np.ndarray, radius: int, block: int = 4096) -> np.ndarray:
    """Every (i, j), i < j, with distance <= radius, by blocked all-pairs XOR/popcount."""
    hashes = np.atleast_2d(hashes)
    found = []
    for start in range(0, len(hashes), block):
        left = hashes[start : start + block]
        dist = hamming(left[:, None, :], hashes[None, start:, :])
        i, j = np.nonzero(dist <= radius)
        keep = j > i
        found.append(np.stack([i[keep] + start, j[keep] + start], axis=1))
    return _sorted_pairs(found)


def radius_pairs(
    hashes: np.ndarray, radius: int, bits: int, block: int = 1024, threads: int = 1
) -> np.ndarray:
    """Every (i, j), i < j, with Hamming distance <= radius, as a sorted (p, 2) int64 array;
    `threads` search blocks of queries at once."""
    hashes = np.ascontiguousarray(np.atleast_2d(hashes), dtype=np.uint64)
    if len(hashes) < 2:
        return np.zeros((0, 2), np.int64)
    chunks = _choose_chunks(len(hashes), bits, radius)
    if chunks is None:
        return brute_force_pairs(hashes, radius)
    keys = _multi_index(hashes, hashes, radius, bits, chunks, block, True, threads)
    return pairs_of_keys(keys, len(hashes))


def radius_pairs_between(
    queries: np.ndarray,
    hashes: np.ndarray,
    radius: int,
    bits: int,
    block: int = 1024,
    threads: int = 1,
) -> np.ndarray:
    """Every (q, h) with distance(queries[q], hashes[h]) <= radius, sorted (p, 2) int64."""
    hashes = np.atleast_2d(hashes)
    keys = radius_keys_between(queries, hashes, radius, bits, block, threads)
    return pairs_of_keys(keys, len(hashes))


def radius_keys_between(
    queries: np.ndarray,
    hashes: np.ndarray,
    radius: int,
    bits: int,
    block: int = 1024,
    threads: int = 1,
) -> np.ndarray:
    """`radius_pairs_between` as sorted int64 keys q * len(hashes) + h: a third of the
    memory of the pairs, for callers that go through tens of millions of them in slices."""
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.uint64)
    hashes = np.ascontiguousarray(np.atleast_2d(hashes), dtype=np.uint64)
    if len(queries) == 0 or len(hashes) == 0:
        return np.zeros(0, np.int64)
    chunks = _choose_chunks(max(len(queries), len(hashes)), bits, radius)
    if chunks is None:
        found = []
        for start in range(0, len(queries), 2048):
            dist = hamming(queries[start : start + 2048, None, :], hashes[None, :, :])
            i, j = np.nonzero(dist <= radius)
            found.append((i + start).astype(np.int64) * len(hashes) + j)
        keys = np.concatenate(found)
        keys.sort()
        return keys
    return _multi_index(queries, hashes, radius, bits, chunks, block, False, threads)


def pairs_of_keys(keys: np.ndarray, size: int) -> np.ndarray:
    """(p, 2) int64 pairs (key // size, key % size), written into one array."""
    pairs = np.empty((len(keys), 2), np.int64)
    np.floor_divide(keys, max(size, 1), out=pairs[:, 0])
    np.remainder(keys, max(size, 1), out=pairs[:, 1])
    return pairs


def _multi_index(
    queries: np.ndarray,
    hashes: np.ndarray,
    radius: int,
    bits: int,
    chunks: int,
    block: int,
    same: bool,
    threads: int,
) -> np.ndarray:
    single = hashes.shape[1] == 1
    # One-word hashes are compared as flat uint64 arrays: a third of the memory traffic.
    flat_hashes, flat_queries = (
        (hashes[:, 0], np.ascontiguousarray(queries[:, 0])) if single else (hashes, queries)
    )
    if not single:
        index_bits, query_bits = _bits(hashes, bits), _bits(queries, bits)
    found = []
    boundaries = np.linspace(0, bits, chunks + 1).round().astype(int)
    per_chunk_radius = radius // chunks
    words = hashes.shape[1]
    for number, (lo, hi) in enumerate(pairwise(boundaries)):
        width = int(hi - lo)
        if single:  # chunk [lo, hi) of the hash, first bit most significant, by shifting
            shift, mask = np.uint64(bits - hi), np.uint64((1 << width) - 1)
            # In place, then viewed as int64 (values < 2^26): no full-size temporaries.
            values = np.right_shift(flat_hashes, shift)
            values &= mask
            values = values.view(np.int64)
            query_values = ((flat_queries >> shift) & mask).view(np.int64)
        else:
            weights = (1 << np.arange(width - 1, -1, -1)).astype(np.int64)
            values = index_bits[:, lo:hi].astype(np.int64) @ weights
            query_values = query_bits[:, lo:hi].astype(np.int64) @ weights
        counts = np.bincount(values, minlength=1 << width)
        # 32-bit bucket tables and row numbers halve the memory traffic of the random lookups
        # (and the index's memory: tens of millions of sub-window hashes at a million rows).
        small = np.int32 if len(hashes) < 2**31 else np.int64
        order = stable_order(values, width)
        del values
        # The index in bucket order, so each probe reads one contiguous run of hashes.
        bucketed = flat_hashes[order]
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(small)
        # Each bucket's (start, end) side by side: one gather per probe reads both.
        starts = np.stack([starts[:-1], starts[1:]], axis=1)
        masks = _masks(width, per_chunk_radius).astype(small)
        query_values = query_values.astype(small)
        earlier = [_chunk_mask(a, b, bits, words) for a, b in pairwise(boundaries[: number + 1])]
        # Queries visited in order of their chunk value: consecutive queries probe nearby
        # buckets (on 200k rows a third less time, spent mostly waiting on the bucket table).
        visit = stable_order(query_values, width)
        chunk = _Chunk(
            query_values, masks, starts, bucketed, order, small, earlier, per_chunk_radius, visit
        )
        probe = partial(_probe, chunk, flat_queries, radius, block, same, len(hashes))
        # The compiled loop and NumPy release the GIL: threads share the index.
        firsts = range(0, len(queries), block)
        if threads > 1 and len(firsts) > 1:
            with ThreadPoolExecutor(threads) as pool:
                blocks = list(pool.map(probe, firsts))
        else:
            blocks = [probe(first) for first in firsts]
        # One array per chunk: joining every block of every chunk at the end held the blocks
        # and their join at once.
        blocks = [b for b in blocks if b is not None]
        if blocks:
            found.append(np.concatenate(blocks))
        del blocks, chunk, probe, bucketed, order, starts
    keys = np.concatenate(found) if found else np.zeros(0, np.int64)
    del found
    keys.sort()  # disjoint across chunks and within one: sorting is all np.unique would do
    return keys


class _Chunk(NamedTuple):
    """One chunk's index: query chunk values, probe masks, bucket starts, hashes in bucket
    order and their original rows."""

    query_values: np.ndarray
    masks: np.ndarray
    starts: np.ndarray
    """(buckets, 2): each bucket's first and end position in `bucketed`."""
    bucketed: np.ndarray
    order: np.ndarray
    small: type
    earlier: list[np.ndarray]
    """Bit masks (per word) of the chunks searched before this one."""
    per_chunk_radius: int
    visit: np.ndarray
    """Query numbers in the order the compiled loop visits them (one-word hashes)."""


def _probe(
    chunk: _Chunk,
    flat_queries: np.ndarray,
    radius: int,
    block: int,
    same: bool,
    size: int,
    first: int,
) -> np.ndarray | None:
    """Keys q * size + h of the pairs that queries [first, first + block) find in one chunk."""
    if flat_queries.ndim == 1:  # one-word hashes: the compiled loop
        from fer.dedup.kernels import probe_block

        keys = probe_block(
            chunk.query_values,
            flat_queries,
            chunk.visit,
            chunk.masks,
            chunk.starts,
            chunk.bucketed,
            chunk.order,
            np.array([mask[0] for mask in chunk.earlier], np.uint64),
            chunk.per_chunk_radius,
            radius,
            same,
            size,
            first,
            min(len(flat_queries), first + block),
        )
        return keys if len(keys) else None
    batch = np.arange(first, min(len(flat_queries), first + block), dtype=np.int64)
    masks, starts = chunk.masks, chunk.starts
    probes = (chunk.query_values[batch, None] ^ masks[None, :]).ravel()
    if starts.dtype == np.int32:
        bounds = starts.view(np.int64)[probes, 0].view(np.int32).reshape(-1, 2)
    else:
        bounds = starts[probes]
    lo_pos = bounds[:, 0]
    sizes = bounds[:, 1] - lo_pos
    hit = np.flatnonzero(sizes)  # most probes find an empty bucket
    if len(hit) == 0:
        return None
    lo_pos, sizes = lo_pos[hit], sizes[hit]
    query_of_probe = batch[hit // len(masks)]
    ends = np.cumsum(sizes, dtype=np.int64)
    # Face hashes crowd some buckets: a block's candidates are expanded a bounded slice of
    # probes at a time, so memory stays flat however skewed the buckets are.
    found, first_probe = [], 0
    while first_probe < len(sizes):
        done = int(ends[first_probe - 1]) if first_probe else 0
        last = max(first_probe + 1, int(np.searchsorted(ends, done + _MAX_EXPANDED, "right")))
        found.append(
            _expand(
                chunk,
                flat_queries,
                radius,
                same,
                size,
                lo_pos[first_probe:last],
                sizes[first_probe:last],
                query_of_probe[first_probe:last],
            )
        )
        first_probe = last
    return np.concatenate(found)


def _expand(
    chunk: _Chunk,
    flat_queries: np.ndarray,
    radius: int,
    same: bool,
    size: int,
    lo_pos: np.ndarray,
    sizes: np.ndarray,
    query_of_probe: np.ndarray,
) -> np.ndarray:
    """Keys of the pairs among the candidates of some probes (bucket runs and their query)."""
    ends = np.cumsum(sizes, dtype=np.int64)
    total = int(ends[-1])
    # Candidate k of probe p sits at bucketed[lo_pos[p] + k].
    offsets = (lo_pos - (ends - sizes)).astype(np.int64 if total >= 2**31 else chunk.small)
    position = np.arange(total, dtype=offsets.dtype) + np.repeat(offsets, sizes)
    query_of = np.repeat(query_of_probe, sizes)
    candidates = chunk.bucketed[position]
    close = hamming_flat(flat_queries[query_of], candidates) <= radius
    query_of, position = query_of[close], position[close]
    if chunk.earlier:
        # A pair an earlier chunk also finds (within per_chunk_radius there) is that chunk's.
        xor = np.bitwise_xor(flat_queries[query_of], candidates[close])
        first_here = np.ones(len(xor), bool)
        for mask in chunk.earlier:
            inside = np.bitwise_count(xor & (mask[0] if xor.ndim == 1 else mask))
            if xor.ndim > 1:
                inside = inside.sum(axis=-1, dtype=np.int64)
            first_here &= inside > chunk.per_chunk_radius
        query_of, position = query_of[first_here], position[first_here]
    other = chunk.order[position].astype(np.int64)
    if same:
        keep = other > query_of
        query_of, other = query_of[keep], other[keep]
    return query_of * size + other


def _chunk_mask(lo: int, hi: int, bits: int, words: int) -> np.ndarray:
    """(words,) uint64 mask of hash bits [lo, hi), bit 0 the most significant of the `bits`
    that the words hold right-aligned (the layout `_bits` unpacks)."""
    mask = [0] * words
    for bit in range(lo, hi):
        position = words * 64 - bits + bit  # from the first word's most significant bit
        mask[position // 64] |= 1 << (63 - position % 64)
    return np.array(mask, dtype=np.uint64)


def stable_order(values: np.ndarray, width: int) -> np.ndarray:
    """`np.argsort(values, kind="stable")` of `width`-bit values, as an LSD radix sort of two
    16-bit halves: NumPy radix-sorts 16-bit keys, twice as fast here as its int64 sort. The
    order comes back as int32 when it fits (the halves are cut first, so the temporaries are
    16-bit keys and one order: tens of millions of sub-window hashes at a million rows)."""
    small = np.int32 if len(values) < 2**31 else np.int64
    if width > 32:
        return np.argsort(values, kind="stable").astype(small)
    if width <= 16:
        return np.argsort(values.astype(np.uint16), kind="stable").astype(small)
    low_bits = width // 2
    high = np.right_shift(values, low_bits).astype(np.uint16)
    order = np.argsort((values & ((1 << low_bits) - 1)).astype(np.uint16), kind="stable")
    order = order.astype(small)
    high = high[order]
    return order[np.argsort(high, kind="stable")]


def hamming_flat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`hamming` of flat uint64 arrays (one-word hashes) or of (n, words) arrays."""
    if a.ndim == 1:
        return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)
    return hamming(a, b)


def _sorted_pairs(found: list[np.ndarray]) -> np.ndarray:
    if not found:
        return np.zeros((0, 2), np.int64)
    pairs = np.concatenate(found).astype(np.int64)
    if len(pairs) == 0:
        return np.zeros((0, 2), np.int64)
    return np.unique(pairs, axis=0)


def _bits(hashes: np.ndarray, bits: int) -> np.ndarray:
    as_bytes = hashes.astype(">u8").view(np.uint8).reshape(len(hashes), -1)
    return np.unpackbits(as_bytes, axis=1)[:, -bits:].astype(bool)


def _masks(width: int, radius: int) -> np.ndarray:
    masks = [0]
    for flips in range(1, radius + 1):
        masks.extend(sum(1 << b for b in chosen) for chosen in combinations(range(width), flips))
    return np.array(masks, dtype=np.int64)


def _choose_chunks(n: int, bits: int, radius: int) -> int | None:
    """Chunk count with the least estimated work, or None when brute force is cheaper."""
    best, best_cost = None, n * n / 2 / 8  # brute force: ~8 pairs per vectorised unit
    for m in range(1, bits + 1):
        width = math.ceil(bits / m)
        if width > _MAX_CHUNK_BITS:
            continue
        d = radius // m
        if d >= width:
            break
        probes = sum(math.comb(width, k) for k in range(d + 1))
        cost = n * m * (probes + probes * n / 2**width * 2) + m * 2**width / 16
        if cost < best_cost:
            best, best_cost = m, cost
    return best
