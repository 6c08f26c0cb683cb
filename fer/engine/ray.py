"""The Ray engine: tasks become a Ray dataset, `map_batches` runs them on an actor pool (the
worker is built once per actor; one GPU per actor when the cluster has GPUs and the stage can
use them), and the results stream back to this process in task order.

`address` empty starts a local Ray with this machine's cores; `auto` or `ray://host:10001`
joins a running cluster. Inputs must be readable at the same absolute paths on every node
(shared storage); outputs are written here, by the stage's own writer.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa

from fer.engine import ENGINES, BatchWorker, Engine, Task
from fer.errors import FerDataError

__all__ = ["RayEngine"]


class _Actor:
    """One Ray Data actor: builds the worker once, then runs the tasks of each batch."""

    def __init__(self, factory: Callable[[], BatchWorker]) -> None:
        self.worker = factory()

    def __call__(self, batch: pa.Table) -> pa.Table:
        tasks = [json.loads(task) for task in batch.column("task").to_pylist()]
        return pa.concat_tables(list(self.worker.run(iter(tasks))))


class RayEngine(Engine):
    name = "ray"

    def __init__(self, address: str = "", workers: int = 0) -> None:
        super().__init__(address, workers)
        try:
            import ray
            import ray.data
        except ImportError:
            raise FerDataError(
                "engine.kind: ray needs Ray Data; install it with `pip install 'fer-data[ray]'`"
            ) from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            options: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": logging.WARNING,
                "log_to_driver": False,
            }
            if address:
                try:
                    ray.init(address=address, **options)
                except ConnectionError as exc:
                    raise FerDataError(
                        f"params.yaml: engine.address {address!r} reached no Ray cluster "
                        f"({str(exc).splitlines()[0]}); start one (`ray start --head`), and "
                        "where it uses token authentication (`ray start` turns it on in Ray "
                        "2.60) set RAY_AUTH_MODE=token here, with its token in "
                        "~/.ray/auth_token or RAY_AUTH_TOKEN"
                    ) from None
            else:
                ray.init(num_cpus=os.cpu_count() or 1, **options)
            self._started = True
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False

    def map_tasks(
        self, factory: Callable[[], BatchWorker], tasks: Sequence[Task], gpu: bool = False
    ) -> Iterator[pa.Table]:
        if not tasks:
            return
        ray = self._ray
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if gpu else 0
        actors = self.workers or gpus or max(1, int(resources.get("CPU", 1)))
        actors = min(actors, len(tasks))
        dataset = ray.data.from_items(
            [{"task": json.dumps(task, sort_keys=True)} for task in tasks],
            override_num_blocks=len(tasks),
        ).map_batches(
            _Actor,
            fn_constructor_args=(factory,),
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=1,
            num_gpus=1 if gpus else 0,
        )
        try:
            yield from dataset.iter_batches(batch_size=None, batch_format="pyarrow")
        except ray.exceptions.RayError as exc:
            message = _domain_message(exc)
            if message is not None:
                raise FerDataError(message) from None
            raise

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False


def _domain_message(exc: BaseException) -> str | None:
    """The one-line message of a FerDataError raised in a task or an actor's constructor
    (Ray hands back its own error types, the original only as text for an actor that died)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, FerDataError):
        return str(cause)
    marker = f"{FerDataError.__module__}.{FerDataError.__name__}: "
    text = str(exc)
    if marker in text:
        return text.rsplit(marker, 1)[1].splitlines()[0].strip()
    return None


ENGINES.register(RayEngine.name, RayEngine)
