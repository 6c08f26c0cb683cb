"""The dataset card of `data/processed`: a README.md with a 🤗-style YAML header (features,
splits, sizes, sources and their licences), so the folder can be published as a dataset."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import yaml

from fer.labels import CLASSES

__all__ = ["CARD_FILE", "dataset_card"]

CARD_FILE = "README.md"
_SPLITS = ("train", "val", "test")
_FEATURES = (
    ("id", "string"),
    ("source", "string"),
    ("source_label", "string"),
    ("label", "string"),
    ("split", "string"),
    ("subject", "string"),
    ("dup_group", "string"),
    ("related_group", "string"),
)


def dataset_card(counts: pd.DataFrame, licences: Mapping[str, str | None]) -> str:
    """README text for a split output whose `counts` are label x split x source image counts."""
    totals = counts.groupby("split")["images"].sum()
    features: list[dict[str, Any]] = [
        {"name": "image", "dtype": "image"},
        {
            "name": "label_index",
            "dtype": {"class_label": {"names": {str(i): c for i, c in enumerate(CLASSES)}}},
        },
        *({"name": name, "dtype": dtype} for name, dtype in _FEATURES),
    ]
    header = {
        "pretty_name": "FER curated with fer-data",
        "license": "other",
        "task_categories": ["image-classification"],
        "tags": ["facial-expression-recognition", "fer-data"],
        "dataset_info": {
            "features": features,
            "splits": [{"name": s, "num_examples": int(totals.get(s, 0))} for s in _SPLITS],
        },
        "configs": [{"config_name": "default", "data_files": "part-*.parquet"}],
    }
    table = counts.pivot_table(
        index="label", columns="split", values="images", aggfunc="sum", fill_value=0
    ).reindex(
        index=[c for c in CLASSES if c in set(counts["label"])], columns=_SPLITS, fill_value=0
    )
    by_source = counts.pivot_table(
        index="source", columns="split", values="images", aggfunc="sum", fill_value=0
    ).reindex(columns=_SPLITS, fill_value=0)
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        "# FER curated with fer-data",
        "",
        "Seven classes (FER2013's order): " + ", ".join(CLASSES) + ". Images are the faces",
        "re-cropped by fer-data's crop stage; duplicates across and within sources were removed,",
        "and duplicate groups, related faces and subjects never straddle two splits. The split",
        "is the `split` column of the Parquet shards.",
        "",
        "| label | " + " | ".join(_SPLITS) + " |",
        "|---|" + "---|" * len(_SPLITS),
        *(
            f"| {label} | " + " | ".join(str(int(v)) for v in row) + " |"
            for label, row in table.iterrows()
        ),
        "| **total** | " + " | ".join(str(int(totals.get(s, 0))) for s in _SPLITS) + " |",
        "",
        "## Sources",
        "",
        "| source | licence | " + " | ".join(_SPLITS) + " |",
        "|---|---|" + "---|" * len(_SPLITS),
        *(
            f"| {source} | {licences.get(source) or f'not given (sources.{source}.licence)'} | "
            + " | ".join(str(int(v)) for v in row)
            + " |"
            for source, row in by_source.iterrows()
        ),
        "",
        "Every image keeps its source's licence; the set as a whole can be shared only where",
        "all of them allow it.",
        "",
    ]
    return "\n".join(lines)
