"""Keyed-hash ranks: deterministic, stable sampling and ordering by row or group id."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

__all__ = ["id_rank"]


def id_rank(ids: Iterable[str], seed: int) -> np.ndarray:
    """A uint64 rank per id: uniform, deterministic, independent of the other ids."""
    key = seed.to_bytes(8, "little", signed=False)
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8, key=key).digest(), "little")
            for i in ids
        ],
        dtype=np.uint64,
    )
