"""Typed, frozen views of `params.yaml`, parsed once and passed around as values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from fer.errors import FerDataError

__all__ = [
    "CROP_NO_FACE_POLICIES",
    "CROP_SELECTIONS",
    "DEFAULT_SPLIT_FOLDERS",
    "AffectNetCsvSource",
    "BalanceParams",
    "CropRuntime",
    "CropSettings",
    "DedupParams",
    "Fer2013CsvSource",
    "ImageFolderSource",
    "IngestParams",
    "Params",
    "Source",
    "SplitParams",
    "TrainParams",
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
# No '-' or '.': they sort before '/', which would break "ids sorted by source, then path".
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")


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


CROP_SELECTIONS = ("largest_score", "largest", "score", "center")
CROP_NO_FACE_POLICIES = ("keep", "drop", "source_box")


@dataclass(frozen=True)
class CropRuntime:
    """How the crop stage runs; results do not depend on these beyond float noise."""

    device: str = "auto"
    """auto (CUDA when available), cpu or cuda."""
    batch_size: int = 512
    """Images per detector call."""
    detect_max_side: int = 640
    """Larger images are downscaled for detection; boxes are mapped back."""
    bucket: int = 32
    """Detector inputs are padded up to a multiple of this, so similar sizes share a batch."""


@dataclass(frozen=True)
class CropSettings:
    """Per-source face re-cropping: `crop.defaults` overridden by `crop.sources.<name>`."""

    enabled: bool = True
    margin: float = 0.2
    """Fraction of the face box side added on each side of the square crop."""
    min_face_size: int = 20
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    min_score: float = 0.9
    """A best face below this score is `low_score`, handled like no face."""
    pad: float = 0.0
    """Gray border added around the frame before detection, as a fraction of its longer side;
    lets MTCNN find faces that fill the frame (FER2013)."""
    output_size: int | None = None
    """Side of the square output in pixels; null keeps the crop's native resolution."""
    select: str = "largest_score"
    align: bool = False
    """Rotate so the eyes are level (similarity transform from the landmarks)."""
    no_face: str = "keep"
    """keep the original flagged, drop it as a counted reject, or crop the source's box."""
    border: str = "edge"
    """How crop areas outside the frame are filled: edge (replicate) or black."""


DEDUP_DUPLICATE_POLICIES = ("drop", "keep")
DEDUP_CONFLICT_POLICIES = ("majority", "drop_group", "keep_all")


@dataclass(frozen=True)
class DedupParams:
    """Label mapping and duplicate detection over the union of all sources."""

    hash: str = "phash"
    """phash | dhash | ahash (imagehash's algorithms)."""
    hash_size: int = 8
    """Bits per hash are hash_size squared; a multiple of 4."""
    radius_frame: int = 4
    """Near duplicates: frame hashes within this Hamming distance, ..."""
    radius_face: int = 6
    """... or face-view hashes within this one, ..."""
    radius_both: int = 8
    """... or both within this wider one (two views agreeing)."""
    hash_margin: float = 0.1
    """Cropped faces are hashed on their face box grown by this margin, so that sources
    cropped with different margins compare alike."""
    duplicates: str = "drop"
    """drop: only the keeper of a group goes on; keep: every member goes on (still grouped)."""
    conflicts: str = "majority"
    """A group whose labels disagree: majority keeps the majority label's members (a tie
    drops the group); drop_group drops it; keep_all ignores the disagreement."""
    workers: int = 0
    gallery_groups: int = 24
    label_maps: Mapping[str, Mapping[str, str | None]] = field(default_factory=dict)
    """Per source: source_label -> canonical class or None (dropped on purpose)."""


@dataclass(frozen=True)
class BalanceParams:
    """Class balance of the merged set (stage balance)."""

    seed: int = 2024
    per_class: int | None = 6000
    """At most this many images per class; null keeps every eligible image."""
    floor: int = 1000
    """Classes with fewer eligible images are named in the summary's warnings."""
    mix: str = "proportional"
    """proportional: sources in proportion to their size; prefer: `prefer` order first."""
    prefer: tuple[str, ...] = ()
    exclude_crop_status: tuple[str, ...] = ("no_face", "too_small")
    """Rows whose crop found no usable face are left out (counted) unless removed here."""


@dataclass(frozen=True)
class SplitParams:
    """Train/val/test split by duplicate group (stage split)."""

    seed: int = 2024
    ratios: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({"train": 0.8, "val": 0.1, "test": 0.1})
    )
    eval_per_class: int | None = None
    """A fixed number of val and of test images per class (balanced evaluation), or null."""


@dataclass(frozen=True)
class TrainParams:
    """Training (stage train); the defaults are the seed report's recipe."""

    model: str = "swin_se_resnet"
    """swin_se_resnet | resnet50 | swin_tiny_patch4_window7_224 | resemotenet | any timm name."""
    image_size: int = 224
    batch_size: int = 32
    epochs: int = 50
    early_stopping: int = 10
    """Stop after this many epochs without a better validation accuracy."""
    lr: float = 1e-4
    step_size: int = 10
    gamma: float = 0.1
    class_weights: bool = False
    rotation: float = 10.0
    translate: float = 0.1
    color_jitter: float = 0.2
    seed: int = 2024
    device: str = "auto"
    workers: int = 0
    """DataLoader worker processes."""
    checkpoint: str | None = None
    """Local weights to start from (nothing is downloaded)."""


@dataclass(frozen=True)
class Params:
    """Everything `params.yaml` holds that the pipeline uses."""

    ingest: IngestParams
    sources: Mapping[str, Source]
    crop_runtime: CropRuntime = field(default_factory=CropRuntime)
    crop: Mapping[str, CropSettings] = field(default_factory=dict)
    dedup: DedupParams = field(default_factory=DedupParams)
    balance: BalanceParams = field(default_factory=BalanceParams)
    split: SplitParams = field(default_factory=SplitParams)
    train: TrainParams = field(default_factory=TrainParams)


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
    runtime, crop = _parse_crop(raw.get("crop") or {}, sources, origin)
    dedup = _parse_dedup(raw.get("dedup") or {}, raw.get("label_maps") or {}, sources, origin)
    return Params(
        ingest=ingest,
        sources=MappingProxyType(dict(sorted(sources.items()))),
        crop_runtime=runtime,
        crop=MappingProxyType(crop),
        dedup=dedup,
        balance=_parse_balance(raw.get("balance") or {}, sources, origin),
        split=_parse_split(raw.get("split") or {}, origin),
        train=_parse_train(raw.get("train") or {}, root, origin),
    )


def _parse_train(raw: Mapping[str, Any], root: Path, origin: str) -> TrainParams:
    where = f"{origin}: train"
    spec = dict(raw)
    if spec.get("checkpoint"):
        spec["checkpoint"] = str(root / spec["checkpoint"])
    for key in ("lr", "gamma", "rotation", "translate", "color_jitter"):
        if key in spec and isinstance(spec[key], int | float | str):
            try:
                spec[key] = float(spec[key])
            except ValueError as exc:
                raise FerDataError(f"{where}.{key}: a number, got {spec[key]!r}") from exc
    params = _build(TrainParams, spec, where)
    for key in ("image_size", "batch_size", "epochs", "early_stopping", "step_size"):
        if not isinstance(getattr(params, key), int) or getattr(params, key) < 1:
            raise FerDataError(f"{where}.{key}: a positive integer")
    if params.device not in ("auto", "cpu", "cuda"):
        raise FerDataError(f"{where}.device: {params.device!r} is not auto, cpu or cuda")
    if params.model.startswith("swin") and params.image_size % 32:
        raise FerDataError(f"{where}.image_size: Swin models need a multiple of 32")
    return params


def _parse_balance(
    raw: Mapping[str, Any], sources: Mapping[str, Source], origin: str
) -> BalanceParams:
    where = f"{origin}: balance"
    spec = dict(raw)
    for key in ("prefer", "exclude_crop_status"):
        if key in spec:
            spec[key] = tuple(spec[key] or ())
    params = _build(BalanceParams, spec, where)
    if not isinstance(params.seed, int) or params.seed < 0:
        raise FerDataError(f"{where}.seed: a non-negative integer")
    if params.per_class is not None and (
        not isinstance(params.per_class, int) or params.per_class < 1
    ):
        raise FerDataError(f"{where}.per_class: a positive integer, or null for no cap")
    if not isinstance(params.floor, int) or params.floor < 0:
        raise FerDataError(f"{where}.floor: a non-negative integer")
    if params.mix not in ("proportional", "prefer"):
        raise FerDataError(f"{where}.mix: {params.mix!r} is not proportional or prefer")
    unknown = sorted(set(params.prefer) - set(sources))
    if unknown:
        raise FerDataError(f"{where}.prefer: {unknown} are not sources")
    return params


def _parse_split(raw: Mapping[str, Any], origin: str) -> SplitParams:
    where = f"{origin}: split"
    spec = dict(raw)
    if "ratios" in spec:
        ratios = dict(spec["ratios"] or {})
        if (
            set(ratios) != {"train", "val", "test"}
            or not all(isinstance(v, int | float) and v >= 0 for v in ratios.values())
            or abs(sum(ratios.values()) - 1) > 1e-6
        ):
            raise FerDataError(
                f"{where}.ratios: train, val and test fractions that sum to 1, got {ratios}"
            )
        spec["ratios"] = MappingProxyType({k: float(v) for k, v in ratios.items()})
    params = _build(SplitParams, spec, where)
    if not isinstance(params.seed, int) or params.seed < 0:
        raise FerDataError(f"{where}.seed: a non-negative integer")
    if params.eval_per_class is not None and (
        not isinstance(params.eval_per_class, int) or params.eval_per_class < 1
    ):
        raise FerDataError(f"{where}.eval_per_class: a positive integer, or null")
    return params


def _parse_dedup(
    raw: Mapping[str, Any], raw_maps: Mapping[str, Any], sources: Mapping[str, Source], origin: str
) -> DedupParams:
    from fer.dedup.hashing import HASH_METHODS
    from fer.labels import CLASSES, PRESETS, resolve_label_map

    where = f"{origin}: dedup"
    if not isinstance(raw, Mapping) or not isinstance(raw_maps, Mapping):
        raise FerDataError(f"{origin}: 'dedup' and 'label_maps' must be mappings")
    extra = sorted(set(raw_maps) - set(sources))
    if extra:
        raise FerDataError(f"{origin}: label_maps: {extra} are not sources; remove them")
    maps = {}
    for name, source in sorted(sources.items()):
        spec = raw_maps.get(name)
        if isinstance(spec, str) and spec not in PRESETS:
            raise FerDataError(
                f"{origin}: label_maps.{name}: unknown preset {spec!r}; use one of "
                f"{', '.join(PRESETS)} or a mapping source_label -> class"
            )
        if isinstance(spec, Mapping) and "preset" in spec and spec["preset"] not in PRESETS:
            raise FerDataError(
                f"{origin}: label_maps.{name}.preset: unknown preset {spec['preset']!r}"
            )
        if spec is not None and not isinstance(spec, str | Mapping):
            raise FerDataError(f"{origin}: label_maps.{name}: a preset name or a mapping")
        ferplus = isinstance(source, Fer2013CsvSource) and source.labels is not None
        resolved = resolve_label_map(spec, source.format, ferplus)
        bad = sorted({str(v) for v in resolved.values() if v is not None and v not in CLASSES})
        if bad:
            raise FerDataError(
                f"{origin}: label_maps.{name}: {bad} are not classes; use {', '.join(CLASSES)} "
                "or null to drop a label"
            )
        maps[name] = MappingProxyType(resolved)
    if "label_maps" in raw:
        raise FerDataError(f"{where}: label maps live in the top-level 'label_maps' section")
    params = replace(_build(DedupParams, dict(raw), where), label_maps=MappingProxyType(maps))
    if params.hash not in HASH_METHODS:
        raise FerDataError(f"{where}.hash: {params.hash!r} is not one of {HASH_METHODS}")
    if not isinstance(params.hash_size, int) or params.hash_size < 4 or params.hash_size % 4:
        raise FerDataError(f"{where}.hash_size: a multiple of 4 (8 gives 64-bit hashes)")
    for key in ("radius_frame", "radius_face", "radius_both"):
        value = getattr(params, key)
        if not isinstance(value, int) or not 0 <= value < params.hash_size**2 // 2:
            raise FerDataError(f"{where}.{key}: an integer from 0 to half the hash bits")
    if params.duplicates not in DEDUP_DUPLICATE_POLICIES:
        raise FerDataError(
            f"{where}.duplicates: {params.duplicates!r} is not one of {DEDUP_DUPLICATE_POLICIES}"
        )
    if params.conflicts not in DEDUP_CONFLICT_POLICIES:
        raise FerDataError(
            f"{where}.conflicts: {params.conflicts!r} is not one of {DEDUP_CONFLICT_POLICIES}"
        )
    if not 0 <= params.hash_margin <= 1:
        raise FerDataError(f"{where}.hash_margin: a fraction in 0..1")
    return params


def _parse_crop(
    raw: Mapping[str, Any], sources: Mapping[str, Source], origin: str
) -> tuple[CropRuntime, dict[str, CropSettings]]:
    where = f"{origin}: crop"
    if not isinstance(raw, Mapping):
        raise FerDataError(f"{where}: expected a mapping with runtime, defaults and sources")
    unknown = sorted(set(raw) - {"runtime", "defaults", "sources"})
    if unknown:
        raise FerDataError(f"{where}: unknown key(s) {unknown}; known: runtime, defaults, sources")
    runtime = _build(CropRuntime, raw.get("runtime") or {}, f"{where}.runtime")
    if runtime.device not in ("auto", "cpu", "cuda"):
        raise FerDataError(f"{where}.runtime.device: {runtime.device!r} is not auto, cpu or cuda")
    for key in ("batch_size", "detect_max_side", "bucket"):
        if not isinstance(getattr(runtime, key), int) or getattr(runtime, key) < 1:
            raise FerDataError(f"{where}.runtime.{key}: must be a positive integer")
    defaults = dict(raw.get("defaults") or {})
    per_source = raw.get("sources") or {}
    extra = sorted(set(per_source) - set(sources))
    if extra:
        raise FerDataError(
            f"{where}.sources: {extra} are not sources; remove them or add the sources"
        )
    settings = {}
    for name in sorted(sources):
        spec = {**defaults, **(per_source.get(name) or {})}
        if "thresholds" in spec:
            spec["thresholds"] = tuple(float(t) for t in spec["thresholds"])
        item = _build(CropSettings, spec, f"{where}.sources.{name}")
        _check_crop(item, f"{where}.sources.{name}")
        settings[name] = item
    return runtime, settings


def _check_crop(item: CropSettings, where: str) -> None:
    if item.select not in CROP_SELECTIONS:
        raise FerDataError(f"{where}.select: {item.select!r} is not one of {CROP_SELECTIONS}")
    if item.no_face not in CROP_NO_FACE_POLICIES:
        raise FerDataError(
            f"{where}.no_face: {item.no_face!r} is not one of {CROP_NO_FACE_POLICIES}"
        )
    if item.border not in ("edge", "black"):
        raise FerDataError(f"{where}.border: {item.border!r} is not edge or black")
    if len(item.thresholds) != 3 or not all(0 <= t <= 1 for t in item.thresholds):
        raise FerDataError(f"{where}.thresholds: give three scores in 0..1 (P-, R-, O-net)")
    if not 0 <= item.margin <= 2 or not 0 <= item.pad <= 1:
        raise FerDataError(f"{where}: margin must be in 0..2 and pad in 0..1")
    if item.output_size is not None and (
        not isinstance(item.output_size, int) or item.output_size < 8
    ):
        raise FerDataError(f"{where}.output_size: an integer >= 8, or null for native size")
    if not isinstance(item.min_face_size, int) or item.min_face_size < 12:
        raise FerDataError(f"{where}.min_face_size: an integer >= 12 (MTCNN's smallest window)")


def _parse_source(name: Any, spec: Any, root: Path, origin: str) -> Source:
    where = f"{origin}: sources.{name}"
    if not isinstance(name, str) or not _SOURCE_NAME.match(name):
        raise FerDataError(f"{where}: source names use letters, digits and '_' only")
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
