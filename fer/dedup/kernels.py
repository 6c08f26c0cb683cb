"""Compiled inner loop of the multi-index search (numba): the probes of a block of queries
into one chunk's buckets, each candidate checked in registers.

The NumPy form of this loop (`fer.dedup.search._expand`) materialises every candidate a
probe reads: the repeated query and position arrays, the gathered hashes, their distances
and masks, ten passes over arrays of hundreds of thousands of values for the few that are
kept. Here each candidate costs one load, an XOR and a popcount. Compiled on first use and
cached beside this module; `nogil`, so the search's threads share one index.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["probe_block"]

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@numba.njit(inline="always")
def _popcount(x: np.uint64) -> np.uint64:
    # The SWAR bit count; LLVM emits POPCNT for it where the CPU has one.
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return (x * _H01) >> np.uint64(56)


@numba.njit(nogil=True, cache=True)
def probe_block(
    query_values: np.ndarray,
    queries: np.ndarray,
    visit: np.ndarray,
    masks: np.ndarray,
    starts: np.ndarray,
    bucketed: np.ndarray,
    order: np.ndarray,
    earlier: np.ndarray,
    per_chunk_radius: int,
    radius: int,
    same: bool,
    size: int,
    first: int,
    last: int,
) -> np.ndarray:
    """Keys q * size + h of the pairs the queries visit[first:last] find in one chunk: for each
    query, every bucket within the chunk radius of its chunk value (`masks`), every hash of
    the bucket within `radius` of the query and not within `per_chunk_radius` on any
    `earlier` chunk's bits (that chunk finds it), and with `same`, only h > q."""
    capacity = 4096
    out = np.empty(capacity, np.int64)
    count = 0
    limit = np.uint64(radius)
    own = np.uint64(per_chunk_radius)
    for i in range(first, last):
        q = np.int64(visit[i])
        value = query_values[q]
        word = queries[q]
        for k in range(len(masks)):
            bucket = value ^ masks[k]
            for position in range(starts[bucket, 0], starts[bucket, 1]):
                difference = word ^ bucketed[position]
                if _popcount(difference) > limit:
                    continue
                found_before = False
                for e in range(len(earlier)):
                    if _popcount(difference & earlier[e]) <= own:
                        found_before = True
                        break
                if found_before:
                    continue
                other = np.int64(order[position])
                if same and other <= q:
                    continue
                if count == capacity:
                    grown = np.empty(capacity * 2, np.int64)
                    grown[:count] = out[:count]
                    out = grown
                    capacity *= 2
                out[count] = q * size + other
                count += 1
    return out[:count].copy()
