"""Typed, frozen views of `params.yaml`, validated once by pydantic and passed around as values.

Every section is a strict pydantic model (`extra="forbid"`, frozen): a string where a number
belongs, a string where a list belongs, a misspelt key or an unknown top-level section is a
one-line `FerDataError` naming the key path and what it expects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from fer.errors import FerDataError
from fer.formats import SourceParams, formats
from fer.hashing import HASH_METHODS
from fer.labels import CLASSES, PRESETS, resolve_label_map

__all__ = [
    "CROP_NO_FACE_POLICIES",
    "CROP_SELECTIONS",
    "CROP_STATUSES",
    "BalanceParams",
    "CropRuntime",
    "CropSettings",
    "DedupParams",
    "IngestParams",
    "Params",
    "SplitParams",
    "StorageParams",
    "TrainParams",
    "load_params",
    "parse_params",
]

# No '-' or '.': they sort before '/', which would break "ids sorted by source, then path".
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
CROP_SELECTIONS = ("largest_score", "largest", "score", "center")
CROP_NO_FACE_POLICIES = ("keep", "drop", "source_box")
CROP_STATUSES = (
    "ok",
    "frame_face",
    "no_face",
    "low_score",
    "too_small",
    "source_box",
    "skipped",
)
FRAME_FACE_SCORE = 0.7
_TOP_LEVEL = (
    "ingest",
    "storage",
    "engine",
    "sources",
    "crop",
    "label_maps",
    "dedup",
    "balance",
    "split",
    "train",
)


def _list_to_tuple(value: object) -> object:
    # YAML gives lists; a string stays a string, so strict validation refuses it.
    return tuple(value) if isinstance(value, list) else value


def _tuple_of(item: Any) -> Any:
    return Annotated[tuple[item, ...], BeforeValidator(_list_to_tuple)]


class _Section(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveInt = Annotated[int, Field(ge=1)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Device = Literal["auto", "cpu", "cuda"]


class IngestParams(_Section):
    """Settings shared by every ingest stage."""

    workers: NonNegativeInt = 0
    """Processes that decode image files; 0 means one per CPU core."""
    max_image_pixels: PositiveInt = 40_000_000
    """Images with more pixels are rejected as decompression bombs."""


class StorageParams(_Section):
    """How every stage writes its dataset."""

    shard_megabytes: PositiveInt = 128
    """Target size of one Parquet shard."""

    @property
    def shard_bytes(self) -> int:
        return self.shard_megabytes * 2**20


class EngineParams(_Section):
    """Where per-image work runs (crop): `local` (this process) or `ray` (Ray Data)."""

    kind: str = "local"
    """A registered engine (`fer.engine.ENGINES`); checked when a stage opens it."""
    address: str = ""
    """ray: empty starts a local Ray with this machine's cores; `auto` or `ray://host:10001`
    joins a running cluster."""
    workers: NonNegativeInt = 0
    """ray: actors; 0 = one per GPU of the cluster when the stage uses GPUs, else one per CPU."""


class CropRuntime(_Section):
    """How the crop stage runs; results do not depend on these beyond float noise."""

    device: Device = "auto"
    """auto (CUDA when available), cpu or cuda."""
    batch_size: PositiveInt = 512
    """Images per detector call."""
    pixel_budget: Annotated[int, Field(ge=1_000_000)] = 4_000_000
    """Detector-input pixels decoded at once: batches are formed by total pixels, so memory
    does not grow with image size."""
    workers: NonNegativeInt = 0
    """Threads decoding, cutting and encoding images; 0 = one per core."""
    processes: NonNegativeInt = 0
    """CPU detection on the local engine: processes (this one included) each cropping whole
    batches with one thread; 0 = one per core, 1 = all in this process on `workers` threads."""
    detect_max_side: PositiveInt = 640
    """Larger images are downscaled for detection; boxes are mapped back."""
    bucket: PositiveInt = 32
    """Detector inputs are padded up to a multiple of this, so similar sizes share a batch."""


class CropSettings(_Section):
    """Per-source face re-cropping: `crop.defaults` overridden by `crop.sources.<name>`."""

    enabled: bool = True
    margin: Annotated[float, Field(ge=0, le=2)] = 0.2
    """Fraction of the face box side added on each side of the square crop."""
    min_face_size: Annotated[int, Field(ge=12)] = 20
    """Pixels at the detection resolution; MTCNN's smallest window is 12."""
    min_face_fraction: Annotated[float, Field(gt=0, le=1)] | None = 0.15
    """Smallest face side as a fraction of the image's shorter side: images are detected at
    the resolution where such a face is 48 pixels (large JPEGs decoded at reduced size), so
    detection cost stops growing with pixels; the crop is cut at full resolution.
    null detects at full resolution (up to `crop.runtime.detect_max_side`): for whole-frame
    sources with small faces."""
    thresholds: Annotated[tuple[Fraction, Fraction, Fraction], BeforeValidator(_list_to_tuple)] = (
        0.6,
        0.7,
        0.7,
    )
    """P-, R- and O-net score thresholds."""
    merge_iou: Annotated[float, Field(gt=0, lt=1)] | None = 0.5
    """Candidate boxes overlapping more than this (IoU) go to the R- and the O-net as one, their
    score-weighted mean; an image left without a face scoring `min_score` is detected again
    on all its candidates. null: every candidate, as MTCNN does."""
    min_score: Fraction = 0.9
    """A best face below this score is `low_score`, handled like no face."""
    pad: Fraction = 0.0
    """Gray border added around the frame before detection, as a fraction of its longer side;
    lets MTCNN find faces that fill the frame (FER2013)."""
    output_size: Annotated[int, Field(ge=8)] | None = None
    """Side of the square output in pixels; null keeps the crop's native resolution."""
    select: Literal["largest_score", "largest", "score", "center"] = "largest_score"
    align: bool = False
    """Rotate so the eyes are level (similarity transform from the landmarks)."""
    no_face: Literal["keep", "drop", "source_box"] = "keep"
    """keep the original flagged, drop it as a counted reject, or crop the source's box."""
    frame_face_score: Fraction | None = FRAME_FACE_SCORE
    """When MTCNN finds no face, the whole frame is scored by its O-net; at least this score
    keeps it as a face (`crop_status: frame_face`), for sources of tight face crops. null
    turns the check off."""
    frame_face_angles: Annotated[
        tuple[Annotated[float, Field(ge=-90, le=90)], ...], BeforeValidator(_list_to_tuple)
    ] = (-45.0, -30.0, -15.0, 15.0, 30.0, 45.0)
    """A frame below `frame_face_score` upright is scored again rotated by these degrees and
    its best score counts (tilted heads: MTCNN's nets are not rotation-invariant)."""
    border: Literal["fit", "edge", "black"] = "fit"
    """fit: shift, then shrink, the window to lie inside the frame (no synthesized pixels);
    edge (replicate) or black fill what lies outside."""


class _CropSection(_Section):
    runtime: CropRuntime = CropRuntime()
    defaults: dict[str, Any] = {}
    sources: dict[str, dict[str, Any] | None] = {}


def _known_hash(name: str) -> str:
    if name not in HASH_METHODS:
        raise ValueError(f"{name!r} is not one of {', '.join(HASH_METHODS)}")
    return name


class DedupParams(_Section):
    """Label mapping and duplicate detection over the union of all sources."""

    hash: Annotated[str, AfterValidator(_known_hash)] = "phash"
    """A registered hash method: phash | dhash | ahash (imagehash's algorithms)."""
    hash_size: Annotated[int, Field(ge=4, multiple_of=4)] = 8
    """Bits per hash are hash_size squared; a multiple of 4."""
    radius_frame: NonNegativeInt = 8
    """Candidates: frame hashes within this Hamming distance, ..."""
    radius_face: NonNegativeInt = 8
    """... or face-view hashes within this one, ..."""
    radius_both: NonNegativeInt = 8
    """... or both within this wider one (two views agreeing); also mirrored."""
    verify_ncc: Annotated[float, Field(ge=-1, le=1)] = 0.95
    """A candidate is a duplicate when its aligned views correlate at least this well
    (normalised cross-correlation), ..."""
    relate_ncc: Annotated[float, Field(ge=-1, le=1)] = 0.90
    """... and related (another photo of the same face) when at least this well; below it
    the two are unrelated faces whose hashes happen to be close."""
    hash_margin: Fraction = 0.1
    """Cropped faces are hashed on their face box grown by this margin, so that sources
    cropped with different margins compare alike."""
    duplicates: Literal["drop", "keep"] = "drop"
    """drop: only the keeper of a group goes on; keep: every member goes on (still grouped)."""
    conflicts: Literal["majority", "drop_group", "keep_all"] = "majority"
    """A group whose labels disagree: majority keeps the majority label's members (a tie
    drops the group); drop_group drops it; keep_all ignores the disagreement."""
    workers: NonNegativeInt = 0
    gallery_groups: NonNegativeInt = 24
    label_maps: Mapping[str, Mapping[str, str | None]] = Field(default_factory=dict)
    """Per source: source_label -> canonical class or None (dropped on purpose); filled from
    the top-level `label_maps` section."""

    @model_validator(mode="after")
    def _radii_fit_the_hash(self) -> DedupParams:
        if self.relate_ncc > self.verify_ncc:
            raise ValueError("relate_ncc must not exceed verify_ncc")
        half = self.hash_size**2 // 2
        for key in ("radius_frame", "radius_face", "radius_both"):
            if getattr(self, key) >= half:
                raise ValueError(f"{key} must be below half the hash bits ({half})")
        return self


def _classes(value: dict[str, int]) -> dict[str, int]:
    from fer.labels import CLASSES

    unknown = sorted(set(value) - set(CLASSES))
    if unknown:
        raise ValueError(f"{unknown} are not classes; use {', '.join(CLASSES)}")
    return value


class BalanceParams(_Section):
    """Class balance of the merged set (stage balance)."""

    seed: NonNegativeInt = 2024
    per_class: PositiveInt | Annotated[dict[str, PositiveInt], AfterValidator(_classes)] | None = (
        6000
    )
    """At most this many images per class, or a cap per class name (a published recipe;
    classes left out are not capped); null keeps every eligible image."""
    floor: NonNegativeInt = 1000
    """Classes with fewer eligible images are named in the summary's warnings."""
    mix: Literal["proportional", "prefer"] = "proportional"
    """proportional: sources in proportion to their size; prefer: `prefer` order first."""
    prefer: _tuple_of(str) = ()
    exclude_crop_status: _tuple_of(
        Literal["ok", "frame_face", "no_face", "low_score", "too_small", "source_box", "skipped"]
    ) = ("no_face", "too_small")
    """Rows whose crop found no usable face are left out (counted) unless removed here."""


def _ratios(value: dict[str, float]) -> dict[str, float]:
    if set(value) != {"train", "val", "test"}:
        raise ValueError(f"give exactly train, val and test, got {sorted(value)}")
    if abs(sum(value.values()) - 1) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {sum(value.values())}")
    return value


class SplitParams(_Section):
    """Train/val/test split by duplicate group (stage split)."""

    seed: NonNegativeInt = 2024
    ratios: Annotated[dict[str, Fraction], AfterValidator(_ratios)] = Field(
        default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1}
    )
    eval_per_class: PositiveInt | None = None
    """A fixed number of val and of test images per class (balanced evaluation), or null."""
    group_by_subject: bool = True
    """Keep every subject of a source (the `subject` column, where known) in one split."""


class TrainParams(_Section):
    """Training (stage train); the defaults are the seed report's recipe."""

    model_config = ConfigDict(protected_namespaces=())

    model: str = "swin_se_resnet"
    """swin_se_resnet | resnet50 | swin_tiny_patch4_window7_224 | resemotenet | any timm name."""
    image_size: PositiveInt = 224
    batch_size: PositiveInt = 32
    epochs: PositiveInt = 50
    early_stopping: PositiveInt = 10
    """Stop after this many epochs without a better validation accuracy."""
    lr: Annotated[float, Field(gt=0)] = 1e-4
    step_size: PositiveInt = 10
    gamma: Annotated[float, Field(gt=0)] = 0.1
    class_weights: bool = False
    rotation: Annotated[float, Field(ge=0, le=180)] = 10.0
    translate: Fraction = 0.1
    color_jitter: Fraction = 0.2
    seed: NonNegativeInt = 2024
    device: Device = "auto"
    workers: NonNegativeInt = 0
    """DataLoader worker processes (the batch order does not depend on it)."""
    shuffle_buffer: PositiveInt = 2048
    """Training rows held for shuffling: the memory of the stream, whatever the dataset size."""
    processes: PositiveInt = 1
    """Training processes on this machine; more than 1 runs DDP under torchrun."""
    checkpoint: str | None = None
    """Local weights to start from (nothing is downloaded)."""

    @model_validator(mode="after")
    def _swin_size(self) -> TrainParams:
        if self.model.startswith("swin") and self.image_size % 32:
            raise ValueError("image_size: Swin models need a multiple of 32")
        return self


@dataclass(frozen=True)
class Params:
    """Everything `params.yaml` holds that the pipeline uses."""

    ingest: IngestParams
    sources: Mapping[str, SourceParams]
    storage: StorageParams = field(default_factory=StorageParams)
    engine: EngineParams = field(default_factory=EngineParams)
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
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FerDataError(f"{path}{where}: not valid YAML ({problem})") from None
    except UnicodeDecodeError as exc:
        raise FerDataError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return parse_params(raw if raw is not None else {}, root=path.parent, origin=str(path))


def parse_params(raw: Any, root: Path, origin: str = "params.yaml") -> Params:
    """Validate a params mapping; every error names the key path and what it expects."""
    if not isinstance(raw, Mapping):
        raise FerDataError(f"{origin}: expected a mapping of sections at the top level")
    unknown = sorted(str(k) for k in set(raw) - set(_TOP_LEVEL))
    if unknown:
        raise FerDataError(
            f"{origin}: unknown top-level key(s) {', '.join(unknown)}; known: {', '.join(_TOP_LEVEL)}"
        )
    sections = {key: _mapping(raw, key, origin) for key in _TOP_LEVEL if key != "sources"}
    if "shard_megabytes" in sections["ingest"]:
        raise FerDataError(f"{origin}: ingest.shard_megabytes: moved to storage.shard_megabytes")
    raw_sources = raw.get("sources")
    if not isinstance(raw_sources, Mapping) or not raw_sources:
        raise FerDataError(f"{origin}: 'sources' must map source names to their settings")
    sources = {
        str(name): _parse_source(name, spec, root, origin) for name, spec in raw_sources.items()
    }
    crop = _validate(_CropSection, sections["crop"], f"{origin}: crop")
    extra = sorted(set(crop.sources) - set(sources))
    if extra:
        raise FerDataError(f"{origin}: crop.sources: {extra} are not sources; remove them")
    _validate(CropSettings, crop.defaults, f"{origin}: crop.defaults")
    settings = {
        name: _validate(
            CropSettings,
            {**crop.defaults, **(crop.sources.get(name) or {})},
            f"{origin}: crop.sources.{name}",
        )
        for name in sorted(sources)
    }
    balance = _validate(BalanceParams, sections["balance"], f"{origin}: balance")
    unknown_prefer = sorted(set(balance.prefer) - set(sources))
    if unknown_prefer:
        raise FerDataError(f"{origin}: balance.prefer: {unknown_prefer} are not sources")
    train = _validate(TrainParams, sections["train"], f"{origin}: train")
    if train.checkpoint:
        train = train.model_copy(update={"checkpoint": str(root / train.checkpoint)})
    dedup = _validate(DedupParams, sections["dedup"], f"{origin}: dedup")
    if "label_maps" in sections["dedup"]:
        raise FerDataError(
            f"{origin}: dedup.label_maps: label maps live in the top-level 'label_maps' section"
        )
    maps = _label_maps(sections["label_maps"], sources, origin)
    return Params(
        ingest=_validate(IngestParams, sections["ingest"], f"{origin}: ingest"),
        storage=_validate(StorageParams, sections["storage"], f"{origin}: storage"),
        engine=_validate(EngineParams, sections["engine"], f"{origin}: engine"),
        sources=MappingProxyType(dict(sorted(sources.items()))),
        crop_runtime=crop.runtime,
        crop=MappingProxyType(settings),
        dedup=dedup.model_copy(update={"label_maps": maps}),
        balance=balance,
        split=_validate(SplitParams, sections["split"], f"{origin}: split"),
        train=train,
    )


def _mapping(raw: Mapping[str, Any], key: str, origin: str) -> Mapping[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise FerDataError(f"{origin}: {key}: expected a mapping of keys, got {_shown(value)}")
    return value


def _label_maps(
    raw_maps: Mapping[str, Any], sources: Mapping[str, SourceParams], origin: str
) -> Mapping[str, Mapping[str, str | None]]:
    extra = sorted(set(raw_maps) - set(sources))
    if extra:
        raise FerDataError(f"{origin}: label_maps: {extra} are not sources; remove them")
    maps = {}
    for name, source in sorted(sources.items()):
        spec = raw_maps.get(name)
        where = f"{origin}: label_maps.{name}"
        if isinstance(spec, str) and spec not in PRESETS:
            raise FerDataError(
                f"{where}: unknown preset {spec!r}; use one of {', '.join(PRESETS)} or a "
                "mapping source_label -> class"
            )
        if isinstance(spec, Mapping) and "preset" in spec and spec["preset"] not in PRESETS:
            raise FerDataError(f"{where}.preset: unknown preset {spec['preset']!r}")
        if spec is not None and not isinstance(spec, str | Mapping):
            raise FerDataError(f"{where}: a preset name or a mapping, got {_shown(spec)}")
        if isinstance(spec, Mapping):
            bad = [
                k
                for k, v in spec.items()
                if k != "preset" and v is not None and not isinstance(v, str)
            ]
            if bad:
                raise FerDataError(
                    f"{where}.{bad[0]}: a class name or null, got {_shown(spec[bad[0]])}"
                )
        resolved = resolve_label_map(spec, source.label_preset())
        bad = sorted({str(v) for v in resolved.values() if v is not None and v not in CLASSES})
        if bad:
            raise FerDataError(
                f"{where}: {bad} are not classes; use {', '.join(CLASSES)} or null to drop a label"
            )
        maps[name] = MappingProxyType(resolved)
    return MappingProxyType(maps)


def _parse_source(name: Any, spec: Any, root: Path, origin: str) -> SourceParams:
    where = f"{origin}: sources.{name}"
    if not isinstance(name, str) or not _SOURCE_NAME.match(name):
        raise FerDataError(f"{where}: source names use letters, digits and '_' only")
    if not isinstance(spec, Mapping):
        raise FerDataError(f"{where}: expected a mapping with 'format' and 'path'")
    spec = dict(spec)
    entry = formats().lookup(spec.pop("format", None), f"{where}.format")
    path = spec.get("path")
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        raise FerDataError(f"{where}.path: give the source's input path as a non-empty string")
    resolved = (root / path).resolve()
    if resolved == root.resolve() or root.resolve().is_relative_to(resolved):
        raise FerDataError(
            f"{where}.path: {path!r} is the project folder or above it; point it at the "
            "source's own file or folder (e.g. data/raw/<name>)"
        )
    spec["path"] = root / path
    return _validate(entry.params, {"name": name, **spec}, where)


def _validate(model: type[BaseModel], values: Any, where: str) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise FerDataError(f"{where}{_location(error)}: {_message(model, error)}") from None


def _location(error: Mapping[str, Any]) -> str:
    parts = [str(p) for p in error["loc"] if not str(p).startswith(("function-", "literal["))]
    return "".join(f".{p}" for p in parts)


def _message(model: type[BaseModel], error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        known = ", ".join(k for k in model.model_fields if k not in ("name",))
        return f"unknown key; known keys here: {known}" if len(error["loc"]) == 1 else "unknown key"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        return "required"
    return f"{message[0].lower()}{message[1:]}, got {_shown(error.get('input'))}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
