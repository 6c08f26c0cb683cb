from __future__ import annotations

from pathlib import Path

import pytest

from fer.config import (
    AffectNetCsvSource,
    Fer2013CsvSource,
    ImageFolderSource,
    load_params,
    parse_params,
)
from fer.errors import FerDataError

ROOT = Path("/project")


def _parse(sources, **extra):
    return parse_params({"sources": sources, **extra}, root=ROOT)


def test_repository_params_file_parses():
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    assert set(params.sources) == {"fer2013", "affectnet"}
    assert isinstance(params.sources["fer2013"], Fer2013CsvSource)
    assert isinstance(params.sources["affectnet"], ImageFolderSource)


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
    with pytest.raises(AttributeError):
        fer.path = Path("elsewhere")  # frozen


@pytest.mark.parametrize(
    ("sources", "extra", "message"),
    [
        (
            {"fer": {"format": "fer2013_csv", "path": "x", "lables": "y"}},
            {},
            "unknown key.*'lables'",
        ),
        ({"fer": {"format": "csv", "path": "x"}}, {}, "is not one of"),
        ({"fer": {"format": "fer2013_csv"}}, {}, "sources.fer.path"),
        ({"bad name": {"format": "image_folder", "path": "x"}}, {}, "source names"),
        (
            {"fer": {"format": "fer2013_csv", "path": "d", "labels": "../fer2013new.csv"}},
            {},
            "inside the source folder",
        ),
        ({}, {}, "'sources' must map"),
        (
            {"a": {"format": "image_folder", "path": "x"}},
            {"ingest": {"workers": -1}},
            "ingest.workers",
        ),
        ({"a": {"format": "image_folder", "path": "x"}}, {"ingest": {"threads": 2}}, "unknown key"),
    ],
)
def test_bad_params_name_the_key(sources, extra, message):
    with pytest.raises(FerDataError, match=message):
        _parse(sources, **extra)


def test_missing_params_file(tmp_path):
    with pytest.raises(FerDataError, match="params file not found"):
        load_params(tmp_path / "params.yaml")


def test_invalid_yaml(tmp_path):
    (tmp_path / "params.yaml").write_text("sources: [unclosed\n")
    with pytest.raises(FerDataError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")
