from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from fer.config import IngestParams
from fer.formats.fer2013_csv import Fer2013CsvSource
from fer.formats.image_folder import ImageFolderSource
from fer.ingest import ingest_source
from fer.sample import write_sample

REPO = Path(__file__).resolve().parents[1]


def fer_data(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fer", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> list[Path]:
    raw = tmp_path_factory.mktemp("raw")
    write_sample(raw)
    out = tmp_path_factory.mktemp("ingest")
    params = IngestParams(workers=1)
    ingest_source(
        Fer2013CsvSource("fer2013", raw / "fer2013.csv"), params, out / "fer2013", progress=False
    )
    ingest_source(
        ImageFolderSource("affectnet", raw / "affectnet"), params, out / "affectnet", progress=False
    )
    return [out / "affectnet", out / "fer2013"]


def test_stats_prints_class_table_and_rejects(ingested):
    result = fer_data("stats", *map(str, ingested))
    assert result.returncode == 0, result.stderr
    assert (
        "source_label" in result.stdout
        and "fer2013" in result.stdout
        and "affectnet" in result.stdout
    )
    assert "wrong_pixel_count" in result.stdout and "decompression_bomb" in result.stdout


def test_stats_json_parses_and_counts_add_up(ingested):
    result = fer_data("stats", "--json", *map(str, ingested))
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    by_path = {Path(s["path"]).name: s for s in stats}
    fer = by_path["fer2013"]
    assert sum(fer["classes"]["fer2013"].values()) == fer["rows"] == fer["summary"]["kept"]
    assert sum(fer["rejected"]["fer2013"].values()) == fer["summary"]["rejected"]
    assert set(fer["splits"]["fer2013"]) == {"Training", "PublicTest", "PrivateTest"}
    assert by_path["affectnet"]["classes"]["affectnet"]["contempt"] == 3


def test_stats_plot_writes_png(ingested, tmp_path):
    out = tmp_path / "plots" / "classes.png"
    result = fer_data("stats", *map(str, ingested), "--plot", str(out))
    assert result.returncode == 0, result.stderr
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 400


def test_stats_on_missing_path_is_one_line_and_exit_1(tmp_path):
    result = fer_data("stats", str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "nowhere" in result.stderr and "no such dataset" in result.stderr


def test_sample_command(tmp_path):
    result = fer_data("sample", str(tmp_path / "raw"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "raw" / "fer2013.csv").exists() and (tmp_path / "raw" / "affectnet").is_dir()


def test_pipeline_script_error_is_one_line_and_exit_1(tmp_path):
    (tmp_path / "params.yaml").write_text(
        "sources:\n  fer2013: {format: fer2013_csv, path: missing.csv}\n"
    )
    result = subprocess.run(
        [sys.executable, str(REPO / "pipeline" / "ingest.py"), "fer2013", "out"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "missing.csv" in result.stderr


def test_help_lists_commands():
    result = fer_data("--help")
    assert result.returncode == 0 and "stats" in result.stdout and "sample" in result.stdout
