"""Choosing the torch device: CUDA when present, the same code path on a CPU."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["resolve_device", "torch_threads"]


def resolve_device(name: str, key: str = "device") -> str:
    """`auto` becomes `cuda` when a GPU is usable, else `cpu`; asking for an absent GPU is an error."""
    import torch

    from fer.errors import FerDataError

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise FerDataError(f"params.yaml: {key} is cuda but no CUDA GPU is usable; use auto or cpu")
    return name


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Torch's CPU intra-op threads set to `count` for the duration, then restored: where a
    thread or process pool gives the parallelism, one thread per op avoids oversubscription."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
