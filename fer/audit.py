"""`fer-data audit`: does an existing train/test split leak? Without a project: each PATH is
ingested, optionally face-checked, and hashed and decided exactly as the dedup stage does, in
a scratch folder; the report counts duplicate and related groups that span splits."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import pandas as pd

from fer.errors import FerDataError

__all__ = ["audit_paths", "leak_gallery", "render_audit"]

_COLUMNS = [
    "id",
    "source",
    "source_split",
    "label",
    "dup_group",
    "dup_group_size",
    "dup_kind",
    "label_conflict",
    "related_group",
    "related_group_size",
    "crop_status",
]
_GALLERY_GROUPS = 24
_GALLERY_TILES = 20


def _is_split_folder(path: Path) -> bool:
    """A folder of class folders holding images (train/ itself), not a folder of splits."""
    return path.is_dir() and any(
        child.is_file()
        for folder in path.iterdir()
        if folder.is_dir()
        for child in folder.iterdir()
    )


def _is_processed(path: Path) -> bool:
    import pyarrow.parquet as pq

    from fer.dataset import SUMMARY_FILE, dataset_shards

    if not (path.is_dir() and (path / SUMMARY_FILE).is_file()):
        return False
    shards = dataset_shards(path)
    return bool(shards) and "split" in pq.read_schema(shards[0]).names


def _processed_as_ingest(path: Path, name: str, out: Path) -> None:
    """A split-stage output as an ingest dataset of source `name`: its label as the source
    label, its split as the source split."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from fer.dataset import INGEST_SCHEMA, DatasetWriter, dataset_shards

    with DatasetWriter(out, INGEST_SCHEMA, 128 * 2**20, {"stage": "ingest", "source": name}) as w:
        for shard in dataset_shards(path):
            file = pq.ParquetFile(shard)
            for group in range(file.num_row_groups):
                table = file.read_row_group(group)
                columns = {c: table.column(c) for c in INGEST_SCHEMA.names}
                columns["source"] = pa.array([name] * table.num_rows, pa.string())
                columns["source_label"] = table.column("label")
                columns["source_split"] = table.column("split")
                columns["id"] = pc.binary_join_element_wise(name, table.column("id"), "/")
                w.add_table(pa.table(columns, schema=INGEST_SCHEMA))
        w.close()


def _source_spec(path: Path) -> dict[str, Any]:
    if path.is_file() and path.suffix.lower() == ".csv":
        return {"format": "fer2013_csv", "path": str(path)}
    if _is_split_folder(path) and not _is_processed(path):
        return {"format": "image_folder", "path": str(path), "split_folders": []}
    if path.is_dir():
        splits = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not splits:
            raise FerDataError(
                f"{path}: no folders inside; give a folder of split folders with class folders "
                "below (train/happy/...), or a FER2013 CSV"
            )
        return {"format": "image_folder", "path": str(path), "split_folders": splits}
    raise FerDataError(f"{path}: not found, or neither a folder nor a .csv file")


def audit_paths(
    paths: Sequence[Path],
    faces: bool = False,
    gallery: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The audit report of `paths` (one source each).

    `faces` runs the face detector and counts images without a face; otherwise images pass
    through uncropped. `gallery` draws the largest duplicate groups that span splits."""
    from fer.config import CropRuntime, CropSettings, IngestParams, parse_params
    from fer.crop import crop_source
    from fer.dataset import read_table
    from fer.dedup import dedup_sources
    from fer.ingest import ingest_source

    if not paths:
        raise FerDataError("audit: give at least one folder or FER2013 CSV")
    names = [f"path{k}" for k in range(len(paths))]
    with tempfile.TemporaryDirectory(prefix="fer-audit-") as scratch:
        root = Path(scratch)
        processed = {n for n, p in zip(names, paths, strict=True) if _is_processed(Path(p))}
        raw = {
            "sources": {
                n: {"format": "image_folder", "path": str(Path(p).resolve())}
                if n in processed
                else _source_spec(Path(p).resolve())
                for n, p in zip(names, paths, strict=True)
            },
            "label_maps": {n: "names" for n in processed},
        }
        params = parse_params(raw, root=root, origin="audit")
        settings = CropSettings(enabled=faces)
        for name, path in zip(names, paths, strict=True):
            if name in processed:
                _processed_as_ingest(Path(path), name, root / "ingest" / name)
            else:
                ingest_source(
                    params.sources[name],
                    IngestParams(),
                    root / "ingest" / name,
                    progress=progress,
                )
            crop_source(
                root / "ingest" / name,
                settings,
                CropRuntime(),
                root / "crop" / name,
                progress=progress,
            )
        dedup_sources(
            {n: root / "crop" / n for n in names},
            {n: root / "ingest" / n for n in names},
            params.dedup,
            root / "dedup",
            progress=progress,
        )
        table = read_table(root / "dedup", columns=_COLUMNS).to_pandas()
        # A path that is itself one split (train/ with class folders) names its split.
        named = {
            n: Path(p).name for n, p in zip(names, paths, strict=True) if _is_split_folder(Path(p))
        }
        table["split"] = table["source_split"].fillna(table["source"].map(named))
        table["split"] = table["split"].fillna("(none)").astype(str)
        report = _report(table, faces)
        if gallery is not None:
            report["gallery_groups"] = leak_gallery(table, root / "dedup", gallery)
    return report


def _spanning(table: pd.DataFrame, column: str) -> tuple[pd.DataFrame, Counter[str]]:
    grouped = table[table[f"{column}_size"] > 1]
    splits = grouped.groupby(column)["split"].agg(lambda s: tuple(sorted(set(s))))
    leaking = splits[splits.map(len) > 1]
    pairs: Counter[str] = Counter()
    for names in leaking:
        pairs.update(f"{a} / {b}" for a, b in combinations(names, 2))
    return table[table[column].isin(leaking.index)], pairs


def _report(table: pd.DataFrame, faces: bool) -> dict[str, Any]:
    leaks, pairs = _spanning(table, "dup_group")
    related, related_pairs = _spanning(table, "related_group")
    conflicts = table[table["label_conflict"]]["dup_group"].nunique()
    report = {
        "images": len(table),
        "images_per_split": dict(sorted(Counter(table["split"]).items())),
        "duplicate_groups": int(table[table["dup_group_size"] > 1]["dup_group"].nunique()),
        "cross_split_groups": int(leaks["dup_group"].nunique()),
        "cross_split_images": len(leaks),
        "cross_split_pairs": dict(sorted(pairs.items())),
        "mirror_cross_split_groups": int(
            leaks[leaks["dup_kind"] == "mirror"]["dup_group"].nunique()
        ),
        "related_cross_split_groups": int(related["related_group"].nunique()),
        "related_cross_split_images": len(related),
        "related_cross_split_pairs": dict(sorted(related_pairs.items())),
        "label_conflicts": int(conflicts),
    }
    if faces:
        report["images_without_face"] = int(
            table["crop_status"].isin(["no_face", "low_score", "too_small"]).sum()
        )
    return report


def render_audit(report: dict[str, Any], seconds: float) -> None:
    """Print the report as tables."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    splits = Table(title=f"{report['images']:,} images", title_justify="left")
    splits.add_column("split")
    splits.add_column("images", justify="right")
    for split, count in report["images_per_split"].items():
        splits.add_row(split, f"{count:,}")
    console.print(splits)
    leaks = Table(title="groups spanning splits", title_justify="left")
    leaks.add_column("splits")
    leaks.add_column("duplicate groups", justify="right")
    leaks.add_column("related groups", justify="right")
    for pair in sorted({*report["cross_split_pairs"], *report["related_cross_split_pairs"]}):
        leaks.add_row(
            pair,
            str(report["cross_split_pairs"].get(pair, 0)),
            str(report["related_cross_split_pairs"].get(pair, 0)),
        )
    console.print(leaks)
    lines = [
        f"duplicate groups spanning splits: {report['cross_split_groups']} "
        f"({report['cross_split_images']} images, {report['mirror_cross_split_groups']} mirrored)",
        f"related groups spanning splits: {report['related_cross_split_groups']} "
        f"({report['related_cross_split_images']} images)",
        f"label conflicts (one photograph, two labels): {report['label_conflicts']}",
    ]
    if "images_without_face" in report:
        lines.append(f"images without a face: {report['images_without_face']}")
    lines.append(f"audited in {seconds:.1f} s")
    console.print("\n".join(lines))


def leak_gallery(table: pd.DataFrame, dataset: Path, out: Path) -> int:
    """Draw the largest duplicate groups of `dataset` (a dedup output) that span splits, each
    image captioned with its split and label, to `out`; returns the number of groups drawn."""
    from fer.dataset import iter_rows
    from fer.sheet import contact_sheet, thumbnail

    leaks, _ = _spanning(table, "dup_group")
    order = leaks.groupby("dup_group").size().sort_values(ascending=False, kind="stable")
    chosen = list(order.index[:_GALLERY_GROUPS])
    panels = []
    wanted = set(leaks[leaks["dup_group"].isin(chosen)]["id"])
    images = {
        row["id"]: row["image"]["bytes"]
        for row in iter_rows(dataset, ["id", "image"])
        if row["id"] in wanted
    }
    for group in chosen:
        members = leaks[leaks["dup_group"] == group].sort_values("id")
        tiles = [
            (row.id, f"{row.split} {row.label}", thumbnail(images[row.id], 72))
            for row in members.head(_GALLERY_TILES).itertuples()
            if row.id in images
        ]
        kind = members["dup_kind"].iloc[0] or "near"
        panels.append((f"{kind} duplicates, {len(members)} images", tiles))
    contact_sheet(panels or [("no duplicate group spans two splits", [])], out, 72)
    return len(chosen)
