"""Typed, frozen views of `params.yaml`, parsed once and passed around as values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from fer.errors import FerDataError

__all__ = [
    "DEFAULT_SPLIT_FOLDERS",
    "AffectNetCsvSource",
    "Fer2013CsvSource",
    "ImageFolderSource",
    "IngestParams",
    "Params",
    "Source",
    "load_params",
    "parse_params",
]

DEFAULT_SPLIT_FOLDERS = (
    "train",
    "training",
    "val",
    "valid",
    "validation",
    "test",
    "testing",
    "publictest",
    "privatetest",
)
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class IngestParams:
    """Settings shared by every ingest stage."""

    workers: int = 0
    """Processes that decode image files; 0 means one per CPU core."""
    shard_megabytes: int = 128
    """Target size of one Parquet shard."""
    max_image_pixels: int = 40_000_000
    """Images with more pixels are rejected as decompression bombs."""


@dataclass(frozen=True)
class Fer2013CsvSource:
    """The FER2013 challenge CSV (`emotion,pixels,Usage`), optionally relabelled by FER+."""

    name: str
    path: Path
    csv: str | None = None
    """CSV file name inside `path` when `path` is a folder."""
    labels: str | None = None
    """FER+ `fer2013new.csv` inside `path` (a folder); its majority vote replaces the label."""
    format: str = field(default="fer2013_csv", init=False)

    @property
    def csv_path(self) -> Path:
        return self.path / self.csv if self.csv else self.path

    @property
    def labels_path(self) -> Path | None:
        return self.path / self.labels if self.labels else None


@dataclass(frozen=True)
class ImageFolderSource:
    """Images in one folder per class at any depth; the parent folder is the label."""

    name: str
    path: Path
    split_folders: tuple[str, ...] = DEFAULT_SPLIT_FOLDERS
    """Ancestor folder names (case-insensitive) that give `source_split`."""
    format: str = field(default="image_folder", init=False)


@dataclass(frozen=True)
class AffectNetCsvSource:
    """AffectNet's Manual_Annotated CSV plus the image root it points into."""

    name: str
    path: Path
    annotations: str = "training.csv"
    """CSV file name inside `path`."""
    images: str = "."
    """Image root inside `path` that `subDirectory_filePath` is relative to."""
    label_column: str = "expression"
    split: str | None = None
    """Value for `source_split` (AffectNet ships training and validation CSVs)."""
    format: str = field(default="affectnet_csv", init=False)

    @property
    def annotations_path(self) -> Path:
        return self.path / self.annotations

    @property
    def images_path(self) -> Path:
        return self.path / self.images


Source = Fer2013CsvSource | ImageFolderSource | AffectNetCsvSource
_FORMATS: dict[str, type] = {
    "fer2013_csv": Fer2013CsvSource,
    "image_folder": ImageFolderSource,
    "affectnet_csv": AffectNetCsvSource,
}
_FOLDER_INPUTS = {"fer2013_csv": ("labels",), "affectnet_csv": ("annotations", "images")}


@dataclass(frozen=True)
class Params:
    """Everything `params.yaml` holds that the pipeline uses."""

    ingest: IngestParams
    sources: Mapping[str, Source]


def load_params(path: str | Path) -> Params:
    """Read and validate a params file; relative paths in it are taken from its folder."""
    path = Path(path)
    if not path.is_file():
        raise FerDataError(f"{path}: params file not found; run from the project root")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise FerDataError(f"{path}: not valid YAML ({exc})") from exc
    return parse_params(raw or {}, root=path.parent, origin=str(path))


def parse_params(raw: Mapping[str, Any], root: Path, origin: str = "params.yaml") -> Params:
    """Validate a params mapping; every error names the key and the fix."""
    if not isinstance(raw, Mapping):
        raise FerDataError(f"{origin}: expected a mapping at the top level")
    ingest = _build(IngestParams, raw.get("ingest") or {}, f"{origin}: ingest")
    for name in ("workers", "shard_megabytes", "max_image_pixels"):
        value = getattr(ingest, name)
        if not isinstance(value, int) or value < (0 if name == "workers" else 1):
            raise FerDataError(f"{origin}: ingest.{name} must be a positive integer, got {value!r}")
    raw_sources = raw.get("sources")
    if not isinstance(raw_sources, Mapping) or not raw_sources:
        raise FerDataError(f"{origin}: 'sources' must map source names to their settings")
    sources = {name: _parse_source(name, spec, root, origin) for name, spec in raw_sources.items()}
    return Params(ingest=ingest, sources=MappingProxyType(dict(sorted(sources.items()))))


def _parse_source(name: Any, spec: Any, root: Path, origin: str) -> Source:
    where = f"{origin}: sources.{name}"
    if not isinstance(name, str) or not _SOURCE_NAME.match(name):
        raise FerDataError(f"{where}: source names use letters, digits, '_' and '-' only")
    if not isinstance(spec, Mapping):
        raise FerDataError(f"{where}: expected a mapping with 'format' and 'path'")
    spec = dict(spec)
    fmt = spec.pop("format", None)
    if fmt not in _FORMATS:
        raise FerDataError(f"{where}.format: {fmt!r} is not one of {', '.join(_FORMATS)}")
    if not isinstance(spec.get("path"), str):
        raise FerDataError(f"{where}.path: give the source's input path as a string")
    spec["path"] = root / spec["path"]
    if "split_folders" in spec:
        spec["split_folders"] = tuple(str(s).lower() for s in spec["split_folders"] or ())
    source = _build(_FORMATS[fmt], {"name": name, **spec}, where)
    for key in _FOLDER_INPUTS.get(fmt, ()):
        relative = getattr(source, key)
        if relative is None:
            continue
        if (
            not isinstance(relative, str)
            or Path(relative).is_absolute()
            or ".." in Path(relative).parts
        ):
            raise FerDataError(
                f"{where}.{key}: {relative!r} must be a path inside the source folder "
                f"{spec['path']} so that DVC tracks it with the source"
            )
    return source


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls) if f.init}
    unknown = sorted(set(values) - known)
    if unknown:
        raise FerDataError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}"
        )
    return cls(**values)
