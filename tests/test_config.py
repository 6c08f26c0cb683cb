from __future__ import annotations

from pathlib import Path

import pytest

from fer.config import load_params, parse_params
from fer.errors import FerDataError
from fer.formats.affectnet_csv import AffectNetCsvSource
from fer.formats.fer2013_csv import Fer2013CsvSource
from fer.formats.image_folder import ImageFolderSource

ROOT = Path("/project")
FOLDER = {"a": {"format": "image_folder", "path": "raw/a"}}


def _parse(sources, **extra):
    return parse_params({"sources": sources, **extra}, root=ROOT)


def test_repository_params_file_parses():
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    assert set(params.sources) == {"fer2013", "affectnet"}
    assert isinstance(params.sources["fer2013"], Fer2013CsvSource)
    assert isinstance(params.sources["affectnet"], ImageFolderSource)
    assert params.storage.shard_bytes == 128 * 2**20


def test_sources_are_typed_and_paths_resolved():
    params = _parse(
        {
            "fer": {
                "format": "fer2013_csv",
                "path": "raw/fer",
                "csv": "fer2013.csv",
                "labels": "fer2013new.csv",
            },
            "an": {
                "format": "affectnet_csv",
                "path": "raw/an",
                "images": "imgs",
                "label_column": "original",
            },
        }
    )
    fer, an = params.sources["fer"], params.sources["an"]
    assert fer.csv_path == ROOT / "raw/fer/fer2013.csv"
    assert fer.labels_path == ROOT / "raw/fer/fer2013new.csv"
    assert isinstance(an, AffectNetCsvSource) and an.images_path == ROOT / "raw/an/imgs"
    assert params.ingest.workers == 0
    assert params.dedup.label_maps["fer"]["happiness"] == "happy"  # FER+ names preset
    assert params.dedup.label_maps["an"]["6"] == "angry"  # AffectNet's indices
    with pytest.raises(Exception, match="frozen"):
        fer.path = Path("elsewhere")


def test_lists_become_tuples_and_ints_are_floats():
    params = _parse(FOLDER, crop={"defaults": {"thresholds": [0.5, 0.6, 1], "margin": 1}})
    assert params.crop["a"].thresholds == (0.5, 0.6, 1.0)
    assert params.crop["a"].margin == 1.0


# One case per class of bad params that adversarial testing found: each is one line that names
# the key path.
@pytest.mark.parametrize(
    ("sources", "extra", "message"),
    [
        (
            {"fer": {"format": "fer2013_csv", "path": "x", "lables": "y"}},
            {},
            r"sources\.fer\.lables: unknown key",
        ),
        (
            {"fer": {"format": "csv", "path": "x"}},
            {},
            r"sources\.fer\.format: 'csv' is not a known",
        ),
        ({"fer": {"format": "fer2013_csv"}}, {}, r"sources\.fer\.path"),
        ({"fer": {"format": "fer2013_csv", "path": ""}}, {}, r"sources\.fer\.path: .*non-empty"),
        ({"fer": {"format": "image_folder", "path": "."}}, {}, r"sources\.fer\.path: .*project"),
        ({"fer": {"format": "image_folder", "path": ".."}}, {}, r"sources\.fer\.path: .*project"),
        ({"bad name": {"format": "image_folder", "path": "x"}}, {}, "source names"),
        (
            {"fer": {"format": "fer2013_csv", "path": "d", "labels": "../fer2013new.csv"}},
            {},
            r"sources\.fer\.labels: .*inside the source folder",
        ),
        (
            {"fer": {"format": "fer2013_csv", "path": "d", "csv": "/etc/passwd"}},
            {},
            r"sources\.fer\.csv: .*inside the source folder",
        ),
        ({}, {}, "'sources' must map"),
        (FOLDER, {"ingest": {"workers": -1}}, r"ingest\.workers: .*greater than or equal to 0"),
        (FOLDER, {"ingest": {"workers": True}}, r"ingest\.workers: .*integer.*got True"),
        (FOLDER, {"ingest": {"threads": 2}}, r"ingest\.threads: unknown key"),
        (FOLDER, {"ingset": {"workers": 2}}, "unknown top-level key.*ingset"),
        (FOLDER, {"ingest": {"shard_megabytes": 2}}, "moved to storage.shard_megabytes"),
        (FOLDER, {"crop": {"defaults": {"margin": "0.2"}}}, r"crop\.defaults\.margin: .*number"),
        (
            FOLDER,
            {"crop": {"defaults": {"thresholds": "0.6 0.7 0.7"}}},
            r"crop\.defaults\.thresholds: .*tuple",
        ),
        (
            FOLDER,
            {"crop": {"sources": {"a": {"thresholds": [0.6, 0.7]}}}},
            r"crop\.sources\.a\.thresholds",
        ),
        (FOLDER, {"crop": {"defaults": {"min_score": "high"}}}, r"crop\.defaults\.min_score"),
        (FOLDER, {"crop": {"defaults": {"merge_iou": 1.0}}}, r"crop\.defaults\.merge_iou: .*less"),
        (FOLDER, {"crop": {"defaults": {"enabled": "false"}}}, r"crop\.defaults\.enabled: .*bool"),
        (FOLDER, {"crop": {"defaults": {"border": "mirror"}}}, r"crop\.defaults\.border"),
        (FOLDER, {"crop": {"sources": {"b": {}}}}, r"crop\.sources: \['b'\] are not sources"),
        (FOLDER, {"dedup": {"hash_margin": "0.1"}}, r"dedup\.hash_margin: .*number"),
        (FOLDER, {"dedup": {"hash": "md5"}}, r"dedup\.hash: .*'md5' is not one of"),
        (FOLDER, {"dedup": {"radius_frame": 40}}, r"dedup: .*radius_frame must be below"),
        (FOLDER, {"dedup": {"workers": True}}, r"dedup\.workers"),
        (
            FOLDER,
            {"balance": {"exclude_crop_status": "no_face"}},
            r"balance\.exclude_crop_status: .*tuple",
        ),
        (
            FOLDER,
            {"balance": {"exclude_crop_status": ["no_faces"]}},
            r"balance\.exclude_crop_status\.0",
        ),
        (FOLDER, {"balance": {"prefer": ["zzz"]}}, r"balance\.prefer: \['zzz'\] are not sources"),
        (FOLDER, {"split": {"ratios": "80/10/10"}}, r"split\.ratios: .*dictionary"),
        (
            FOLDER,
            {"split": {"ratios": {"train": 0.8, "val": 0.1, "test": 0.2}}},
            r"split\.ratios: fractions must sum to 1",
        ),
        (FOLDER, {"train": {"lr": "fast"}}, r"train\.lr"),
        (FOLDER, {"train": {"model": "swin_se_resnet", "image_size": 100}}, "multiple of 32"),
        (FOLDER, {"label_maps": {"a": "emotions"}}, r"label_maps\.a: unknown preset"),
        (FOLDER, {"label_maps": {"a": {"joy": "glee"}}}, r"label_maps\.a: \['glee'\] are not"),
        (FOLDER, {"label_maps": {"a": {"joy": 3}}}, r"label_maps\.a\.joy: a class name"),
        (FOLDER, {"crop": ["x"]}, r"crop: expected a mapping"),
    ],
)
def test_bad_params_name_the_key(sources, extra, message):
    with pytest.raises(FerDataError, match=message) as caught:
        _parse(sources, **extra)
    assert "\n" not in str(caught.value)


def test_split_folders_as_a_string_is_refused():
    with pytest.raises(FerDataError, match=r"sources\.a\.split_folders: .*tuple"):
        _parse({"a": {"format": "image_folder", "path": "x", "split_folders": "train"}})
    params = _parse({"a": {"format": "image_folder", "path": "x", "split_folders": ["Train"]}})
    assert params.sources["a"].split_folders == ("train",)


def test_missing_params_file(tmp_path):
    with pytest.raises(FerDataError, match="params file not found"):
        load_params(tmp_path / "params.yaml")


def test_invalid_yaml_is_one_line_with_its_position(tmp_path):
    (tmp_path / "params.yaml").write_text("sources:\n  a: [unclosed\n")
    with pytest.raises(FerDataError, match=r"params.yaml:\d+:\d+: not valid YAML") as caught:
        load_params(tmp_path / "params.yaml")
    assert "\n" not in str(caught.value)


def test_csv_symlink_out_of_the_source_folder_is_refused(tmp_path):
    folder = tmp_path / "raw" / "fer"
    folder.mkdir(parents=True)
    (folder / "fer2013.csv").symlink_to("/etc/passwd")
    params = parse_params(
        {"sources": {"fer": {"format": "fer2013_csv", "path": "raw/fer", "csv": "fer2013.csv"}}},
        root=tmp_path,
    )
    with pytest.raises(FerDataError, match="outside the source folder") as caught:
        params.sources["fer"].csv_path  # noqa: B018
    assert "root:" not in str(caught.value)  # nothing of the target's content is shown
