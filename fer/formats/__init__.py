"""Source formats: one module each, registered in FORMATS by importing it.

A format module defines a params model (a `SourceParams` subclass), a reader that yields
`Kept` rows sorted by id and `Refused` inputs, and registers both with `register_format`.
Every module in this package is imported on first use of `formats()`, so a new format is
one new file here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict

from fer.formats.common import Kept, Refused, safe_relative_path
from fer.registry import Registry

__all__ = [
    "FORMATS",
    "RelativeInput",
    "SourceFormat",
    "SourceParams",
    "formats",
    "register_format",
]


class SourceParams(BaseModel):
    """Settings every source has; formats subclass it with their own keys."""

    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, arbitrary_types_allowed=True
    )

    name: str
    path: Path
    """The source's root: a file, or a folder that holds every input of the source."""
    licence: str | None = None
    """The source's licence as its publisher gives it (the processed set's dataset card)."""
    default_preset: ClassVar[str] = "names"

    def __init__(self, name: str | None = None, path: Path | None = None, **values: Any) -> None:
        if name is not None:
            values["name"] = name
        if path is not None:
            values["path"] = Path(path)
        super().__init__(**values)

    format_name: ClassVar[str] = ""

    @property
    def format(self) -> str:
        return self.format_name

    def label_preset(self) -> str:
        """The label preset used when `label_maps` has no entry for this source."""
        return self.default_preset


Reader = Callable[..., Iterator[Kept | Refused]]


@dataclass(frozen=True)
class SourceFormat:
    """A registered format: its params model and its reader.

    The reader is called as `read(source, max_image_pixels=..., workers=...)`.
    """

    name: str
    params: type[SourceParams]
    read: Reader


FORMATS: Registry[SourceFormat] = Registry("source format")
_loaded = False


def register_format(params: type[SourceParams], read: Reader) -> SourceFormat:
    """Register a format under `params.format_name` (called at the bottom of its module)."""
    name = params.format_name
    return FORMATS.register(name, SourceFormat(name, params, read))


def _relative_input(value: str) -> str:
    if safe_relative_path(value) is None or value.strip() in ("", "."):
        raise ValueError(
            "must be a path inside the source folder (relative, no '..'), so that DVC tracks it "
            "with the source"
        )
    return value


RelativeInput = Annotated[str, AfterValidator(_relative_input)]
"""A params value naming a file or folder inside the source's `path`."""


def formats() -> Registry[SourceFormat]:
    """The format registry with every module of this package imported."""
    global _loaded
    if not _loaded:
        for module in pkgutil.iter_modules(__path__):
            if module.name != "common":
                importlib.import_module(f"{__name__}.{module.name}")
        _loaded = True
    return FORMATS
