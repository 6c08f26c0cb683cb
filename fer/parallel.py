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
_END = object()


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
    fn: Callable[[A], B],
    items: Iterable[A],
    workers: int,
    ahead: int = 2,
    here: Callable[[A], B] | None = None,
) -> Iterator[B]:
    """`map(fn, items)` over one pool of `workers` processes for the whole stream.

    `items` is consumed lazily: at most `ahead` items per worker are in flight, so memory is
    bounded by a few items, and the caller's reading overlaps the workers' computing. Meant for
    coarse items (a chunk of rows each). One worker runs everything in this process. With
    `here` (the same work, done in this process), this process is one of the `workers`: it
    runs an item itself whenever each of the others has `ahead` items in flight, and the
    last item whenever each has one.
    """
    workers = worker_count(workers)
    if workers == 1:
        yield from map(here or fn, items)
        return
    pool_size = workers - 1 if here else workers
    pending: deque[Future[B]] = deque()
    stream = iter(items)
    upcoming = next(stream, _END)
    with ProcessPoolExecutor(max_workers=pool_size) as pool:
        while upcoming is not _END:
            item, upcoming = upcoming, next(stream, _END)
            busy = sum(not f.done() for f in pending)
            if here is not None and busy >= pool_size * (1 if upcoming is _END else ahead):
                done: Future[B] = Future()
                done.set_result(here(item))
                pending.append(done)
            else:
                pending.append(pool.submit(fn, item))
            while pending and (pending[0].done() or len(pending) >= workers * ahead):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
