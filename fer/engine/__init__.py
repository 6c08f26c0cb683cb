"""Engines run a stage's per-batch work and hand the results back in order, so one writer
writes the same bytes whichever engine ran: `local` in this process, `ray` on a Ray cluster
(Ray Data `map_batches` over an actor pool). A new engine is one module here that registers
itself in ENGINES.

A stage describes its work as a list of small JSON-able tasks (which rows to read) and a
worker factory: a picklable callable that builds the worker once per process or actor
(loading a detector, say). `worker.run(tasks)` yields one Arrow table per task, in order.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, Protocol

import pyarrow as pa

from fer.registry import Registry

__all__ = ["ENGINES", "BatchWorker", "Engine", "engines", "open_engine"]

Task = dict[str, Any]


class BatchWorker(Protocol):
    def run(self, tasks: Iterator[Task]) -> Iterator[pa.Table]: ...


class Engine(ABC):
    """Runs `worker.run` over tasks; results come back in task order."""

    name: ClassVar[str]
    in_process: ClassVar[bool] = False
    """Workers run in this process, so a worker may use the machine's cores itself."""

    def __init__(self, address: str = "", workers: int = 0) -> None:
        self.address, self.workers = address, workers

    @abstractmethod
    def map_tasks(
        self, factory: Callable[[], BatchWorker], tasks: Sequence[Task], gpu: bool = False
    ) -> Iterator[pa.Table]:
        """One table per task (or the same rows in more tables), in task order."""

    def close(self) -> None:  # noqa: B027 (a hook: engines that start nothing keep it)
        """Release what the engine started."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


ENGINES: Registry[type[Engine]] = Registry("engine")


def engines() -> Registry[type[Engine]]:
    """ENGINES, with every engine module of this package imported (each registers itself)."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return ENGINES


def open_engine(kind: str, address: str = "", workers: int = 0) -> Engine:
    """The engine named `kind`, connected (`address`: empty for a local start)."""
    return engines().lookup(kind, "engine.kind")(address, workers)
