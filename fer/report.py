"""`fer-data report`: one self-contained HTML page for a project after `dvc repro`: the funnel
from raw rows to the processed set with every reject reason, label x split x source, crop
contact sheets, duplicate and related galleries, the cross-source contamination matrix,
subjects per split, and the train/evaluate metrics with the confusion matrix."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fer.dataset import read_summary, read_table
from fer.errors import FerDataError

__all__ = ["ProjectOutputs", "funnel", "render_report"]

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
th { background: #f4f4f4; }
img { max-width: 100%; border: 1px solid #eee; }
.note { color: #666; }
"""


@dataclass(frozen=True)
class ProjectOutputs:
    """Where a project's stage outputs are (the paths `dvc.yaml` gives them)."""

    ingest: Mapping[str, Path]
    crop: Mapping[str, Path]
    dedup: Path
    balance: Path
    processed: Path
    train_metrics: Path | None = None
    eval_metrics: Path | None = None

    @classmethod
    def of_project(cls, root: Path) -> ProjectOutputs:
        """The standard layout of a fer-data project at `root`."""
        interim = root / "data" / "interim"
        if not (interim / "dedup").is_dir() or not (root / "data" / "processed").is_dir():
            raise FerDataError(
                f"{root}: no stage outputs (data/interim, data/processed); run `dvc repro` first"
            )
        names = sorted(p.name for p in (interim / "ingest").iterdir() if p.is_dir())
        return cls(
            ingest={n: interim / "ingest" / n for n in names},
            crop={n: interim / "crop" / n for n in names if (interim / "crop" / n).is_dir()},
            dedup=interim / "dedup",
            balance=interim / "balance",
            processed=root / "data" / "processed",
            train_metrics=root / "metrics" / "train",
            eval_metrics=root / "metrics" / "eval",
        )


def funnel(outputs: ProjectOutputs) -> list[dict[str, Any]]:
    """Rows per step from the raw inputs to the processed set, each with its rejects by reason."""
    ingest = [read_summary(p) for p in outputs.ingest.values()]
    crop = [read_summary(p) for p in outputs.crop.values()]
    dedup, balance, split = (
        read_summary(p) for p in (outputs.dedup, outputs.balance, outputs.processed)
    )

    def reasons(summaries: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        total: dict[str, int] = {}
        for summary in summaries:
            for reason, count in summary.get("rejected_by_reason", {}).items():
                total[reason] = total.get(reason, 0) + int(count)
        return dict(sorted(total.items()))

    return [
        {
            "step": "raw rows and files",
            "rows": sum(s.get("total", 0) for s in ingest),
            "rejects": {},
        },
        {
            "step": "ingested",
            "rows": sum(s.get("kept", 0) for s in ingest),
            "rejects": reasons(ingest),
        },
        {"step": "cropped", "rows": sum(s.get("kept", 0) for s in crop), "rejects": reasons(crop)},
        {"step": "labelled (dedup)", "rows": dedup.get("kept", 0), "rejects": reasons([dedup])},
        {
            "step": "not a duplicate copy",
            "rows": dedup.get("going_on", dedup.get("kept", 0)),
            "rejects": {},
        },
        {"step": "balanced", "rows": balance.get("kept", 0), "rejects": reasons([balance])},
        {"step": "processed (split)", "rows": split.get("kept", 0), "rejects": reasons([split])},
    ]


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _img(data: bytes | str, alt: str) -> str:
    encoded = data if isinstance(data, str) else base64.b64encode(data).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _funnel_picture(steps: list[dict[str, Any]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(9, 0.5 * len(steps) + 1))
    names = [s["step"] for s in steps][::-1]
    rows = [s["rows"] for s in steps][::-1]
    ax.barh(names, rows, color="#4c78a8")
    for y, value in enumerate(rows):
        ax.text(value, y, f" {value:,}", va="center", fontsize=9)
    ax.set_xlabel("rows")
    ax.set_title("from raw rows to the processed set")
    ax.spines[["top", "right"]].set_visible(False)
    return _img(_png(figure), "funnel")


def _table(frame: pd.DataFrame, name: str) -> str:
    head = "".join(
        f"<th>{html.escape(str(c))}</th>" for c in [frame.index.name or "", *frame.columns]
    )
    body = "".join(
        "<tr>"
        + f"<td>{html.escape(str(index))}</td>"
        + "".join(
            f'<td data-cell="{html.escape(name)}:{html.escape(str(index))}:{html.escape(str(c))}">{v:,}</td>'
            if isinstance(v, int | float)
            else f'<td class="text">{html.escape(str(v))}</td>'
            for c, v in zip(frame.columns, row, strict=True)
        )
        + "</tr>"
        for index, row in zip(frame.index, frame.itertuples(index=False), strict=True)
    )
    return f'<table data-table="{html.escape(name)}"><tr>{head}</tr>{body}</table>'


def contamination(dedup: Path) -> pd.DataFrame:
    """Images of source A (rows) in a duplicate group with an image of source B (columns)."""
    table = read_table(dedup, columns=["source", "dup_group", "dup_group_size"]).to_pandas()
    sources = sorted(set(table["source"]))
    grouped = table[table["dup_group_size"] > 1]
    members = grouped.groupby("dup_group")["source"].agg(lambda s: sorted(set(s)))
    matrix = pd.DataFrame(0, index=pd.Index(sources, name="source"), columns=sources)
    group_sources = grouped["dup_group"].map(members)
    for source, others in zip(grouped["source"], group_sources, strict=True):
        for other in others:
            if other != source:
                matrix.loc[source, other] += 1
    return matrix.astype(int)


def render_report(outputs: ProjectOutputs, out: Path) -> dict[str, Any]:
    """Write the report page to `out`; returns the figures it shows."""
    steps = funnel(outputs)
    split = read_summary(outputs.processed)
    counts_file = outputs.processed / "counts.csv"
    counts = (
        pd.read_csv(counts_file)
        if counts_file.is_file()
        else pd.DataFrame(columns=["label", "split", "source", "images"])
    )
    sections = [
        f"<h1>fer-data report</h1><p class=note>{len(outputs.ingest)} sources: "
        f"{html.escape(', '.join(outputs.ingest))}</p>"
    ]
    funnel_frame = pd.DataFrame(
        {
            "rows": [s["rows"] for s in steps],
            "rejected here, by reason": [
                ", ".join(f"{r} {n:,}" for r, n in s["rejects"].items()) or "—" for s in steps
            ],
        },
        index=pd.Index([s["step"] for s in steps], name="step"),
    )
    sections += ["<h2>Funnel</h2>", _funnel_picture(steps), _table(funnel_frame, "funnel")]
    if not counts.empty:
        pivot = counts.pivot_table(
            index=["label"],
            columns=["split", "source"],
            values="images",
            aggfunc="sum",
            fill_value=0,
        )
        pivot.columns = [f"{s} / {src}" for s, src in pivot.columns]
        sections += [
            "<h2>Label × split × source</h2>",
            _table(pivot.astype(int), "label_split_source"),
        ]
    subjects = split.get("subjects_by_split", {})
    sections += [
        "<h2>Subjects per split</h2>",
        _table(
            pd.DataFrame({"subjects": subjects}, index=pd.Index(list(subjects), name="split")),
            "subjects",
        )
        if subjects
        else "<p class=note>no source names subjects</p>",
        f"<p>subjects in two splits: {split.get('subjects_in_two_splits', 0)}; duplicate groups in "
        f"two splits: {split.get('duplicate_groups_in_two_splits', 0)}; related groups in two "
        f"splits: {split.get('related_groups_in_two_splits', 0)}</p>",
    ]
    matrix = contamination(outputs.dedup)
    sections += [
        "<h2>Cross-source contamination</h2>",
        "<p class=note>images of the row's source in a duplicate group with an image of the "
        "column's source</p>",
        _table(matrix, "contamination"),
    ]
    sections.append("<h2>Crops</h2>")
    for name, folder in outputs.crop.items():
        sheet = folder / "contact_sheet.png"
        if sheet.is_file():
            sections += [f"<h3>{html.escape(name)}</h3>", _img(sheet.read_bytes(), f"crops {name}")]
    sections.append("<h2>Duplicates and related faces</h2>")
    for file, title in (("duplicates.png", "duplicate groups"), ("related.png", "related groups")):
        picture = outputs.dedup / file
        if picture.is_file():
            sections += [f"<h3>{title}</h3>", _img(picture.read_bytes(), title)]
    metrics = {}
    if outputs.eval_metrics is not None and (outputs.eval_metrics / "metrics.json").is_file():
        metrics = json.loads((outputs.eval_metrics / "metrics.json").read_text())
        shown = {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}
        sections += [
            "<h2>Evaluation</h2>",
            _table(
                pd.DataFrame({"value": shown}, index=pd.Index(list(shown), name="metric")),
                "evaluation",
            ),
        ]
        confusion = outputs.eval_metrics / "confusion.png"
        if confusion.is_file():
            sections.append(_img(confusion.read_bytes(), "confusion matrix"))
    if outputs.train_metrics is not None and (outputs.train_metrics / "metrics.json").is_file():
        train = json.loads((outputs.train_metrics / "metrics.json").read_text())
        flat = {
            f"{k}/{m}": v for k, d in train.items() if isinstance(d, dict) for m, v in d.items()
        }
        sections += [
            "<h2>Training (last epoch)</h2>",
            _table(
                pd.DataFrame({"value": flat}, index=pd.Index(list(flat), name="metric")), "training"
            ),
        ]
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>fer-data report</title><style>"
        + _STYLE
        + "</style></head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return {
        "funnel": {s["step"]: s["rows"] for s in steps},
        "processed": split.get("kept", 0),
        "contamination": matrix.to_dict(),
        "evaluation": metrics,
    }
