"""The local engine: the worker runs in this process (its own threads do the parallel work)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pyarrow as pa

from fer.engine import ENGINES, BatchWorker, Engine, Task

__all__ = ["LocalEngine"]


class LocalEngine(Engine):
    name = "local"
    in_process = True

    def map_tasks(
        self, factory: Callable[[], BatchWorker], tasks: Sequence[Task], gpu: bool = False
    ) -> Iterator[pa.Table]:
        yield from factory().run(iter(tasks))


ENGINES.register(LocalEngine.name, LocalEngine)
