"""Stream one split of a processed dataset as batches: memory is one shuffle buffer, and the
order depends only on the seed and the epoch, never on the number of DataLoader workers.

The stream is planned from the Parquet row groups (only the `split` and `label_index` columns
are read to plan). Each epoch permutes the row groups with `(seed, epoch)`; rank `r` of `world`
takes every `world`-th of them, reads them in that order through a shuffle buffer and cuts the
result into batches. DataLoader worker `w` of `W` decodes and augments only batches
`k % W == w`, and the DataLoader hands batches out round-robin, so batch `k` is the same
images, augmented the same way (seeded by `(seed, epoch, rank, k)`), for any `W`. Every worker
reads the rank's rows (cheap next to decoding them); only its own batches are decoded.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from math import ceil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from fer.dataset import dataset_shards
from fer.errors import FerDataError
from fer.labels import CLASSES

__all__ = ["SplitStream"]

_Sample = tuple[str, bytes, int]


@dataclass(frozen=True)
class _Unit:
    """Rows `start:stop` of one row group's rows of the split."""

    shard: int
    row_group: int
    start: int
    stop: int


class SplitStream(IterableDataset):
    """Batches `(images, labels)` (or `(images, labels, ids)`) of one split, streamed."""

    def __init__(
        self,
        path: str | Path,
        split: str,
        batch_size: int,
        transform: Callable[[Image.Image], torch.Tensor],
        seed: int = 0,
        shuffle: bool = False,
        shuffle_buffer: int = 2048,
        drop_last: bool = False,
        rank: int = 0,
        world: int = 1,
        with_ids: bool = False,
    ) -> None:
        self._shards = [str(s) for s in dataset_shards(path)]
        self.split, self.batch_size, self.transform = split, batch_size, transform
        self.seed, self.shuffle, self.shuffle_buffer = seed, shuffle, shuffle_buffer
        self.drop_last, self.rank, self.world, self.with_ids = drop_last, rank, world, with_ids
        self.epoch = 0
        self.label_counts = np.zeros(len(CLASSES), dtype=np.int64)
        groups: list[tuple[int, int, int]] = []
        for shard_index, shard in enumerate(self._shards):
            file = pq.ParquetFile(shard)
            if "split" not in file.schema_arrow.names:
                raise FerDataError(f"{path}: has no 'split' column; use the split stage output")
            for group in range(file.num_row_groups):
                table = file.read_row_group(group, columns=["split", "label_index"])
                labels = table.column("label_index").filter(pc.equal(table.column("split"), split))
                values = labels.to_numpy()
                self.label_counts += np.bincount(values, minlength=len(CLASSES))[: len(CLASSES)]
                if len(values):
                    groups.append((shard_index, group, len(values)))
        # Enough units that every rank gets some: row groups are cut when there are few.
        pieces = max(1, ceil(4 * world / max(1, len(groups))))
        self._units = [
            _Unit(shard, group, start, min(rows, start + ceil(rows / pieces)))
            for shard, group, rows in groups
            for start in range(0, rows, ceil(rows / pieces))
        ]
        self._files: dict[int, pq.ParquetFile] = {}

    @property
    def rows(self) -> int:
        """Rows of the split over all ranks."""
        return int(self.label_counts.sum())

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration follows."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self._batch_count(self.epoch)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        epoch = self.epoch
        for index, batch in enumerate(self._batches(epoch)):
            if index % workers == worker:
                yield self._collate(epoch, index, batch)

    def _rank_units(self, epoch: int, rank: int) -> list[_Unit]:
        order = np.arange(len(self._units))
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self._units))
        return [self._units[i] for i in order[rank :: self.world]]

    def _batch_count(self, epoch: int) -> int:
        rows = [
            sum(u.stop - u.start for u in self._rank_units(epoch, r)) for r in range(self.world)
        ]
        if self.drop_last:
            # Every rank takes the same number of steps, or DDP waits forever on the last one.
            full = min(rows) // self.batch_size
            return full if full else int(min(rows) > 0)
        return ceil(rows[self.rank] / self.batch_size)

    def _batches(self, epoch: int) -> Iterator[list[_Sample]]:
        count = self._batch_count(epoch)
        batch: list[_Sample] = []
        made = 0
        for sample in self._samples(epoch):
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield batch
                batch, made = [], made + 1
                if made == count:
                    return
        if batch and made < count:
            yield batch

    def _samples(self, epoch: int) -> Iterator[_Sample]:
        units = self._rank_units(epoch, self.rank)
        if not self.shuffle:
            for unit in units:
                yield from self._read(unit)
            return
        rng = np.random.default_rng([self.seed, epoch, self.rank])
        buffer: list[_Sample] = []
        for unit in units:
            samples = self._read(unit)
            room = self.shuffle_buffer - len(buffer)
            buffer += samples[:room]
            rest = samples[room:]
            for slot, sample in zip(rng.integers(0, len(buffer), len(rest)), rest, strict=True):
                yield buffer[slot]
                buffer[slot] = sample
        for slot in rng.permutation(len(buffer)):
            yield buffer[slot]

    def _read(self, unit: _Unit) -> list[_Sample]:
        file = self._files.get(unit.shard)
        if file is None:
            file = self._files[unit.shard] = pq.ParquetFile(self._shards[unit.shard])
        table = file.read_row_group(unit.row_group, columns=["id", "image", "label_index", "split"])
        table = table.filter(pc.equal(table.column("split"), self.split))
        table = table.slice(unit.start, unit.stop - unit.start)
        images = pc.struct_field(table.column("image"), "bytes").to_pylist()
        return list(
            zip(
                table.column("id").to_pylist(),
                images,
                table.column("label_index").to_pylist(),
                strict=True,
            )
        )

    def _collate(self, epoch: int, index: int, batch: Sequence[_Sample]) -> tuple[Any, ...]:
        seed = int(
            np.random.SeedSequence([self.seed, epoch, self.rank, index]).generate_state(1)[0]
        )
        # The augmentation draws from torch's global generator: seed it per batch, and leave
        # the caller's generator (dropout, init) as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            tensors = []
            for _, data, _ in batch:
                with Image.open(io.BytesIO(data)) as image:
                    tensors.append(self.transform(image.convert("RGB")))
        images = torch.stack(tensors)
        labels = torch.tensor([label for _, _, label in batch], dtype=torch.long)
        if self.with_ids:
            return images, labels, [row_id for row_id, _, _ in batch]
        return images, labels
