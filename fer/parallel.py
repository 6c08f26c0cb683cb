"""One process pool helper for per-item work that keeps input order."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

__all__ = ["ordered_imap", "ordered_map", "worker_count"]

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


def ordered_imap(
    fn: Callable[[A], B], items: Iterable[A], workers: int, ahead: int = 2
) -> Iterator[B]:
    """`map(fn, items)` over one pool of `workers` processes for the whole stream.

    `items` is consumed lazily: at most `ahead` items per worker are in flight, so memory is
    bounded by a few items, and the caller's reading overlaps the workers' computing. Meant for
    coarse items (a chunk of rows each). One worker runs everything in this process.
    """
    workers = worker_count(workers)
    if workers == 1:
        yield from map(fn, items)
        return
    pending: deque[Future[B]] = deque()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= workers * ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
