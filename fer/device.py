"""Choosing the torch device: CUDA when present, the same code path on a CPU."""

from __future__ import annotations

__all__ = ["resolve_device"]


def resolve_device(name: str, key: str = "device") -> str:
    """`auto` becomes `cuda` when a GPU is usable, else `cpu`; asking for an absent GPU is an error."""
    import torch

    from fer.errors import FerDataError

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise FerDataError(f"params.yaml: {key} is cuda but no CUDA GPU is usable; use auto or cpu")
    return name
