from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fer.balance import select_balanced
from fer.config import parse_params
from fer.errors import FerDataError
from fer.labels import CLASSES
from fer.ranking import id_rank
from fer.split import SPLITS, assign_splits

RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}


def _rows(
    n: int, seed: int = 0, sources: tuple[str, ...] = ("a", "b"), group_every: int = 0
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = [f"{sources[i % len(sources)]}/{i:06d}" for i in range(n)]
    groups = [ids[i - i % group_every] if group_every else ids[i] for i in range(n)]
    labels = rng.choice(CLASSES, size=n)
    if group_every:  # duplicates share their label
        labels = labels[[i - i % group_every for i in range(n)]]
    return pd.DataFrame(
        {
            "id": ids,
            "source": [i.split("/")[0] for i in ids],
            "label": labels,
            "dup_group": groups,
        }
    )


@st.composite
def grouped_rows(draw) -> pd.DataFrame:
    sizes = draw(st.lists(st.integers(1, 6), min_size=1, max_size=120))
    labels = draw(st.lists(st.sampled_from(CLASSES[:3]), min_size=len(sizes), max_size=len(sizes)))
    records = []
    for g, (size, label) in enumerate(zip(sizes, labels, strict=True)):
        for k in range(size):
            records.append(
                {"id": f"s/{g:04d}-{k}", "source": "s", "label": label, "dup_group": f"s/{g:04d}-0"}
            )
    return pd.DataFrame(records)


# Balance ----------------------------------------------------------------------------------


def test_per_class_caps_by_class_name_reproduce_a_recipe():
    from fer.config import BalanceParams

    rows = _rows(2000)
    recipe = {"angry": 50, "happy": 120, "neutral": 7}
    chosen = rows[select_balanced(rows, per_class=recipe, seed=3)]
    counts = chosen.groupby("label").size().to_dict()
    assert {k: counts[k] for k in recipe} == recipe
    for label, available in rows.groupby("label").size().items():
        if label not in recipe:
            assert counts[label] == available  # not capped
    within_cap = rows[select_balanced(rows, per_class=100, seed=3)]
    assert set(chosen[chosen["label"] == "angry"]["id"]) <= set(
        within_cap[within_cap["label"] == "angry"]["id"]
    )  # the same ranking: a smaller cap keeps a subset
    assert BalanceParams(per_class={"sad": 5}).per_class == {"sad": 5}
    with pytest.raises(ValueError, match="are not classes"):
        BalanceParams(per_class={"sadness": 5})


def test_id_rank_is_keyed_and_deterministic():
    ids = [f"x/{i}" for i in range(100)]
    assert np.array_equal(id_rank(ids, 1), id_rank(ids, 1))
    assert not np.array_equal(id_rank(ids, 1), id_rank(ids, 2))
    assert id_rank(ids[:10], 1).tolist() == id_rank(ids, 1)[:10].tolist(), (
        "a rank ignores the other ids"
    )


def test_balance_caps_each_class_and_keeps_small_ones():
    rows = _rows(2000)
    chosen = select_balanced(rows, per_class=100, seed=3)
    counts = rows[chosen].groupby("label").size()
    assert (counts == 100).all()
    small = rows[rows["label"].isin(["angry", "sad"])].head(150)
    assert select_balanced(small, per_class=100, seed=3).sum() <= 150


def test_proportional_mix_follows_source_sizes_and_prefer_takes_order():
    rows = _rows(3000, sources=("a", "a", "a", "b"))  # a is 3x b
    chosen = rows[select_balanced(rows, per_class=200, seed=1)]
    share_a = (chosen["source"] == "a").mean()
    assert 0.68 < share_a < 0.82
    preferred = rows[select_balanced(rows, per_class=50, seed=1, mix="prefer", prefer=("b",))]
    assert (preferred["source"] == "b").all()


def test_balance_is_a_pure_function():
    rows = _rows(500)
    before = rows.copy()
    first = select_balanced(rows, 30, seed=5)
    assert first.equals(select_balanced(rows, 30, seed=5))
    pd.testing.assert_frame_equal(rows, before)


@settings(max_examples=25, deadline=None)
@given(st.integers(2000, 6000), st.integers(0, 2**32 - 1))
def test_adding_one_percent_changes_little_of_the_selection(n, seed):
    rows = _rows(n, seed=seed % 1000)
    per_class = n // 14
    before = set(rows.loc[select_balanced(rows, per_class, seed), "id"])
    extra = _rows(n + n // 100, seed=seed % 1000 + 1).iloc[n:].assign(id=lambda d: "new" + d["id"])
    grown = pd.concat([rows, extra], ignore_index=True)
    after = set(grown.loc[select_balanced(grown, per_class, seed), "id"])
    changed = len(before - after)
    assert changed <= 0.02 * len(before) + 2


# Split ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(grouped_rows(), st.integers(0, 2**32 - 1))
def test_split_properties(rows, seed):
    split = assign_splits(rows, RATIOS, seed, group_column="dup_group")
    assert set(split) <= set(SPLITS)
    assert (rows.assign(split=split).groupby("dup_group")["split"].nunique() == 1).all(), (
        "no group in two splits"
    )
    largest = rows.groupby("dup_group").size().max()
    for label, members in rows.assign(split=split).groupby("label"):
        total = len(members)
        for name, ratio in RATIOS.items():
            assert abs((members["split"] == name).sum() - ratio * total) <= largest, (label, name)


@settings(max_examples=20, deadline=None)
@given(grouped_rows(), st.integers(0, 2**32 - 1))
def test_split_same_seed_same_result(rows, seed):
    assert assign_splits(rows, RATIOS, seed, group_column="dup_group").equals(
        assign_splits(rows, RATIOS, seed, group_column="dup_group")
    )
    shuffled = rows.sample(frac=1, random_state=1)
    assert (
        assign_splits(shuffled, RATIOS, seed, group_column="dup_group")
        .sort_index()
        .equals(assign_splits(rows, RATIOS, seed, group_column="dup_group"))
    )


def test_balanced_evaluation_sets():
    rows = _rows(3000, group_every=3)
    split = assign_splits(rows, RATIOS, seed=9, eval_per_class=40, group_column="dup_group")
    table = rows.assign(split=split).groupby(["label", "split"]).size().unstack()
    assert ((table["test"] - 40).abs() <= 3).all() and ((table["val"] - 40).abs() <= 3).all()


def test_split_params_validation():
    base = {"sources": {"a": {"format": "image_folder", "path": "x"}}}
    with pytest.raises(FerDataError, match="sum to 1"):
        parse_params(
            {**base, "split": {"ratios": {"train": 0.8, "val": 0.3, "test": 0.1}}}, Path(".")
        )
    with pytest.raises(FerDataError, match="prefer"):
        parse_params({**base, "balance": {"prefer": ["zzz"]}}, Path("."))
    with pytest.raises(FerDataError, match="per_class"):
        parse_params({**base, "balance": {"per_class": 0}}, Path("."))


# The stages and export on the sample pipeline --------------------------------------------------


def test_export_loads_with_torchvision_and_datasets(tmp_path, sample_pipeline):
    import datasets
    from torchvision.datasets import ImageFolder

    from fer.export import export_dataset

    processed = sample_pipeline / "processed"
    counts = export_dataset(processed, tmp_path / "folder", "imagefolder")
    train = ImageFolder(str(tmp_path / "folder" / "train"))
    assert len(train) == counts["train"] > 0
    assert train.classes == sorted(CLASSES)
    image, _ = train[0]
    assert image.size[0] > 0

    export_dataset(processed, tmp_path / "pq", "parquet")
    loaded = datasets.load_dataset(
        "parquet", data_files={s: str(tmp_path / "pq" / f"{s}.parquet") for s in SPLITS}
    )
    assert loaded["train"].num_rows == counts["train"]
    assert loaded["train"].features["label"].names == list(CLASSES)
    first = loaded["train"][0]
    assert isinstance(first["image"], Image.Image)
    with pytest.raises(FerDataError, match="not empty"):
        export_dataset(processed, tmp_path / "pq", "parquet")


def test_processed_invariants(sample_pipeline):
    from fer.dataset import read_summary, read_table

    rows = read_table(sample_pipeline / "processed").to_pandas()
    for column in ("dup_group", "related_group", "split_group"):
        assert (rows.groupby(column)["split"].nunique() == 1).all(), column
    assert rows["dedup_keep"].all() and rows["id"].is_monotonic_increasing
    summary = read_summary(sample_pipeline / "processed")
    assert summary["groups_in_two_splits"] == 0
    balance = read_summary(sample_pipeline / "balance")
    assert balance["total"] == balance["kept"] + balance["rejected"]
    assert balance["kept"] == summary["kept"] == len(rows)
    assert set(balance["rejected_by_reason"]) <= {
        "duplicate",
        "label_conflict",
        "crop_no_face",
        "crop_too_small",
        "over_class_cap",
    }
    counts = pd.read_csv(sample_pipeline / "processed" / "counts.csv")
    assert counts["images"].sum() == len(rows)
    image = Image.open(io.BytesIO(rows.iloc[0]["image"]["bytes"]))
    assert image.size == (rows.iloc[0]["width"], rows.iloc[0]["height"])


def test_export_refuses_a_non_split_folder(tmp_path, sample_pipeline):
    from fer.export import export_dataset

    with pytest.raises(FerDataError, match="not a split stage output"):
        export_dataset(sample_pipeline / "balance", tmp_path / "x", "imagefolder")
    with pytest.raises(FerDataError, match="--format"):
        export_dataset(sample_pipeline / "processed", tmp_path / "y", "tfrecord")


def test_processed_has_a_dataset_card_that_matches_the_summary(sample_pipeline):
    import yaml

    from fer.dataset import read_summary

    text = (sample_pipeline / "processed" / "README.md").read_text()
    _, header, body = text.split("---\n", 2)
    card = yaml.safe_load(header)
    summary = read_summary(sample_pipeline / "processed")
    splits = {s["name"]: s["num_examples"] for s in card["dataset_info"]["splits"]}
    assert splits == summary["split_totals"]
    names = card["dataset_info"]["features"][1]["dtype"]["class_label"]["names"]
    assert list(names.values()) == [
        "angry",
        "disgust",
        "fear",
        "happy",
        "sad",
        "surprise",
        "neutral",
    ]
    assert card["configs"][0]["data_files"] == "part-*.parquet"
    assert "## Sources" in body and "fer2013" in body
