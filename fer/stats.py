"""Class distributions and reject counts of any stage output, as tables, JSON or a chart."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fer.dataset import read_rejects, read_summary, read_table
from fer.errors import FerDataError

__all__ = ["collect_stats", "plot_stats", "render_stats"]

_LABEL_COLUMNS = ("label", "source_label")
_SPLIT_COLUMNS = ("split", "source_split")
_STATUS_COLUMNS = ("crop_status", "dedup_reason")
_SPLIT_ORDER = ("train", "val", "test")


def collect_stats(path: str | Path) -> dict[str, Any]:
    """Counts of one dataset: source x class, source x split, rejects by source x reason."""
    path = Path(path)
    table = read_table(path, columns=["source", *_LABEL_COLUMNS, *_SPLIT_COLUMNS, *_STATUS_COLUMNS])
    names = table.column_names
    label_column = next((c for c in _LABEL_COLUMNS if c in names), None)
    split_column = next((c for c in _SPLIT_COLUMNS if c in names), None)
    if "source" not in names or label_column is None:
        raise FerDataError(f"{path}: has no 'source' and 'label'/'source_label' columns to count")
    sources = table.column("source").to_pylist()
    labels = table.column(label_column).to_pylist()
    splits = table.column(split_column).to_pylist() if split_column else [None] * len(sources)
    rejects = read_rejects(path)
    summary = read_summary(path)
    return {
        "path": str(path),
        "stage": summary.get("stage"),
        "rows": len(sources),
        "label_column": label_column,
        "split_column": split_column,
        "classes": _nested(zip(sources, map(_key, labels), strict=True)),
        "splits": _nested(zip(sources, map(_key, splits), strict=True)) if split_column else {},
        "by_split": _nested(zip(map(_key, splits), map(_key, labels), strict=True))
        if split_column == "split"
        else {},
        "by_split_per_source": {
            source: _nested(
                (_key(sp), _key(lb))
                for src, sp, lb in zip(sources, splits, labels, strict=True)
                if src == source
            )
            for source in sorted(set(sources))
        }
        if split_column == "split"
        else {},
        "statuses": {
            column: _nested(zip(sources, map(_key, table.column(column).to_pylist()), strict=True))
            for column in _STATUS_COLUMNS
            if column in names
        },
        "synthesized_pixel_share": _synthesized(path),
        "rejected": _nested(
            zip(
                rejects.column("source").to_pylist(),
                rejects.column("reason").to_pylist(),
                strict=True,
            )
        ),
        "summary": summary,
    }


def _synthesized(path: Path) -> dict[str, float]:
    """Per source, the mean share of crop output pixels that lie outside the original frame."""
    table = read_table(path, columns=["source", "crop_synthesized"])
    if "crop_synthesized" not in table.column_names:
        return {}
    frame = table.to_pandas().dropna()
    return {
        str(k): round(float(v), 4)
        for k, v in frame.groupby("source")["crop_synthesized"].mean().items()
    }


def _key(value: Any) -> str:
    if value is None:
        return "(none)"
    return str(value) or "(kept)"


def _nested(pairs: Any) -> dict[str, dict[str, int]]:
    counts = Counter(pairs)
    out: dict[str, dict[str, int]] = {}
    for (outer, inner), n in sorted(counts.items()):
        out.setdefault(outer, {})[inner] = n
    return out


def _class_order(classes: dict[str, dict[str, int]]) -> list[str]:
    keys = {k for per_source in classes.values() for k in per_source}
    return sorted(keys, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))


def render_stats(collected: Sequence[dict[str, Any]]) -> None:
    """Print rich tables: class x source, split x source, and rejects by reason."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for stats in collected:
        title = f"{stats['path']}  ({stats['stage'] or 'dataset'}, {stats['rows']} rows)"
        console.print(
            _matrix(
                Table,
                title,
                stats["label_column"],
                stats["classes"],
                _class_order(stats["classes"]),
            )
        )
        if stats["by_split"]:
            order = _class_order(stats["classes"])
            console.print(
                _matrix(Table, "all sources", "label", stats["by_split"], order, _SPLIT_ORDER)
            )
            for source, counts in stats["by_split_per_source"].items():
                console.print(_matrix(Table, source, "label", counts, order, _SPLIT_ORDER))
        if not stats["by_split"] and any(set(v) != {"(none)"} for v in stats["splits"].values()):
            console.print(
                _matrix(
                    Table,
                    None,
                    stats["split_column"],
                    stats["splits"],
                    _class_order(stats["splits"]),
                )
            )
        for column, counts in stats["statuses"].items():
            statuses = sorted({k for per_source in counts.values() for k in per_source})
            console.print(_matrix(Table, None, column, counts, statuses))
        if stats["synthesized_pixel_share"]:
            shares = ", ".join(f"{k} {v:.1%}" for k, v in stats["synthesized_pixel_share"].items())
            console.print(f"synthesized crop pixels (outside the original frame): {shares}")
        _render_dedup(console, stats["summary"])
        if stats["rejected"]:
            reasons = sorted({r for per in stats["rejected"].values() for r in per})
            console.print(_matrix(Table, None, "rejected: reason", stats["rejected"], reasons))
        else:
            console.print("rejected: none")


def _render_dedup(console: Any, summary: dict[str, Any]) -> None:
    if summary.get("stage") != "dedup":
        return
    kinds = summary["groups_by_kind"]
    spanning = ", ".join(f"{k}: {v}" for k, v in summary["groups_spanning_source_splits"].items())
    related_spanning = ", ".join(
        f"{k}: {v}" for k, v in summary.get("related_groups_spanning_source_splits", {}).items()
    )
    console.print(
        f"candidates ({summary['hash']} {summary['hash_bits']} bits, also mirrored; radius frame "
        f"{summary['radius_frame']}, face {summary['radius_face']}, both {summary['radius_both']}): "
        f"{summary.get('candidate_pairs', '?')} pairs, {summary.get('compared_pairs', '?')} "
        f"compared (NCC >= {summary.get('verify_ncc', '?')} is a duplicate)"
    )
    console.print(
        f"duplicates: {summary['duplicate_pairs']} pairs, {summary['duplicate_groups']} groups "
        f"holding {summary['images_in_groups']} images (largest {summary['largest_group']}); "
        f"{kinds['exact']} exact, {kinds['near']} near, {kinds.get('mirror', 0)} mirror; "
        f"{kinds['within_source']} within a source, {kinds['across_sources']} across sources; "
        f"{kinds['conflicting_labels']} with conflicting labels; spanning a source's own "
        f"splits: {spanning or 'n/a'}"
    )
    if "related_groups" in summary:
        console.print(
            f"related: {summary['related_pairs']} pairs ({summary['related_by_subject']} by "
            f"subject), {summary['related_groups']} groups holding "
            f"{summary['images_in_related_groups']} images (largest "
            f"{summary['largest_related_group']}); spanning a source's own splits: "
            f"{related_spanning or 'n/a'}"
        )


def _matrix(
    table_cls: Any,
    title: str | None,
    corner: str,
    counts: dict[str, dict[str, int]],
    rows: list[str],
    column_order: tuple[str, ...] = (),
) -> Any:
    sources = sorted(
        counts, key=lambda c: (column_order.index(c) if c in column_order else len(column_order), c)
    )
    table = table_cls(title=title, title_justify="left")
    table.add_column(corner)
    for source in sources:
        table.add_column(source, justify="right")
    table.add_column("total", justify="right", style="bold")
    for row in rows:
        values = [counts[s].get(row, 0) for s in sources]
        table.add_row(row, *map(str, values), str(sum(values)))
    totals = [sum(counts[s].values()) for s in sources]
    table.add_row("total", *map(str, totals), str(sum(totals)), style="bold")
    return table


def _grouped_by_source(ax: Any, stats: dict[str, Any], classes: list[str], x: Any) -> None:
    sources = sorted(stats["classes"])
    width = 0.8 / max(1, len(sources))
    for i, source in enumerate(sources):
        values = [stats["classes"][source].get(c, 0) for c in classes]
        bars = ax.bar(x + (i - (len(sources) - 1) / 2) * width, values, width, label=source)
        ax.bar_label(bars, fontsize=7, padding=1)
    ax.set_title(f"{stats['path']}: {stats['label_column']} per source", fontsize=10)


def _stacked_by_split(ax: Any, stats: dict[str, Any], classes: list[str], x: Any) -> None:
    bottom = [0] * len(classes)
    splits = [s for s in _SPLIT_ORDER if s in stats["by_split"]]
    for split in splits:
        values = [stats["by_split"][split].get(c, 0) for c in classes]
        bars = ax.bar(x, values, 0.7, bottom=bottom, label=split)
        ax.bar_label(
            bars, labels=[str(v) if v else "" for v in values], label_type="center", fontsize=7
        )
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_title(f"{stats['path']}: label per split (stacked), {stats['rows']} images", fontsize=10)


def plot_stats(collected: Sequence[dict[str, Any]], out: str | Path) -> None:
    """Bar chart PNG of class counts per source, one panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(len(collected), 1, figsize=(10, 3.6 * len(collected)), squeeze=False)
    for ax, stats in zip(axes[:, 0], collected, strict=True):
        classes = _class_order(stats["classes"])
        x = np.arange(len(classes))
        if stats["by_split"]:
            _stacked_by_split(ax, stats, classes, x)
        else:
            _grouped_by_source(ax, stats, classes, x)
        rotate = len(classes) > 8
        ax.set_xticks(x, classes, rotation=30 if rotate else 0, ha="right" if rotate else "center")
        ax.set_ylabel("images")
        ax.legend(fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
