"""One process pool helper for per-item work that keeps input order."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

__all__ = ["ordered_map", "worker_count"]

A = TypeVar("A")
B = TypeVar("B")


def worker_count(workers: int) -> int:
    """`workers`, with 0 meaning one per CPU core."""
    return workers or os.cpu_count() or 1


def ordered_map(
    fn: Callable[[A], B], items: Sequence[A], workers: int, chunksize: int, serial_below: int = 256
) -> Iterator[B]:
    """`map(fn, items)` over `workers` processes (0: one per core); small inputs stay serial."""
    workers = worker_count(workers)
    if workers == 1 or len(items) < serial_below:
        yield from map(fn, items)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(fn, items, chunksize=chunksize)
