"""`dvc repro` on the bundled sample, in a throwaway copy of the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fer.dataset import read_summary, read_table

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _make_project(tmp_path_factory) -> Path:
    if shutil.which("dvc", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("dvc is not installed next to this Python")
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    root = tmp_path_factory.mktemp("project")
    for relative in files:
        if (REPO / relative).is_file():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / relative, root / relative)
    (root / "dvc.lock").unlink(missing_ok=True)
    _run(["git", "init", "-q"], root)
    _run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "init",
            "--allow-empty",
        ],
        root,
    )
    _run(["fer-data", "sample", "data/raw"], root)
    _run(["dvc", "repro"], root)
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return _make_project(tmp_path_factory)


def test_processed_dataset_is_split_without_leakage(project):
    rows = read_table(
        project / "data" / "processed", columns=["id", "split", "dup_group"]
    ).to_pandas()
    assert set(rows["split"]) == {"train", "val", "test"}
    assert (rows.groupby("dup_group")["split"].nunique() == 1).all()
    assert len(list((project / "data" / "processed").glob("*.parquet"))) <= 3


@pytest.mark.parametrize("stage", ["ingest", "crop"])
def test_repro_runs_every_stage_for_every_source(project, stage):
    for source in ("fer2013", "affectnet"):
        out = project / "data" / "interim" / stage / source
        summary = read_summary(out)
        assert summary["stage"] == stage
        assert summary["total"] == summary["kept"] + summary["rejected"] > 0
        assert read_table(out, columns=["id"]).num_rows == summary["kept"]
    assert (project / "dvc.lock").exists()


def test_dedup_merges_every_source(project):
    summary = read_summary(project / "data" / "interim" / "dedup")
    assert summary["stage"] == "dedup" and summary["sources"] == ["affectnet", "fer2013"]
    assert summary["duplicate_groups"] >= 10 and summary["groups_by_kind"]["across_sources"] >= 4
    assert (project / "data" / "interim" / "dedup" / "duplicates.png").exists()


def test_crop_found_faces_in_the_sample(project):
    for source in ("fer2013", "affectnet"):
        summary = read_summary(project / "data" / "interim" / "crop" / source)
        assert summary["kept_by_crop_status"]["ok"] >= 0.7 * summary["total"]
        assert (project / "data" / "interim" / "crop" / source / "contact_sheet.png").exists()


def test_second_repro_does_nothing(project):
    result = _run(["dvc", "repro"], project)
    assert "Running stage" not in result.stdout
    status = _run(["dvc", "status"], project)
    assert "up to date" in status.stdout


@contextmanager
def _repro_with_params_edit(project: Path, old: str, new: str) -> Iterator[str]:
    """`dvc repro` with one edit to params.yaml; yields its output, then restores and re-runs."""
    params = project / "params.yaml"
    original = params.read_text()
    assert old in original
    params.write_text(original.replace(old, new))
    try:
        yield _run(["dvc", "repro"], project).stdout
    finally:
        params.write_text(original)
        _run(["dvc", "repro"], project)


def test_editing_one_source_reruns_only_its_ingest(project):
    edit = ("path: data/raw/affectnet\n", "path: data/raw/affectnet\n    split_folders: [train]\n")
    with _repro_with_params_edit(project, *edit) as output:
        assert "Running stage 'ingest@affectnet'" in output
        assert "Running stage 'ingest@fer2013'" not in output
        assert "Running stage 'crop@fer2013'" not in output


def test_editing_a_balance_param_reruns_only_balance_and_split(project):
    with _repro_with_params_edit(project, "  per_class: 6000 ", "  per_class: 10 ") as output:
        ran = [line for line in output.splitlines() if line.startswith("Running stage")]
        assert ran == [
            "Running stage 'balance':",
            "Running stage 'split':",
            "Running stage 'train':",
            "Running stage 'evaluate':",
        ]
        summary = read_summary(project / "data" / "processed")
        assert max(summary["kept_by_label"].values()) <= 10


def test_two_clean_runs_give_identical_bytes(project, tmp_path_factory):
    other = _make_project(tmp_path_factory)
    for folder in ("data/interim/dedup", "data/interim/balance", "data/processed"):
        mine = {
            p.relative_to(project): p.read_bytes()
            for p in sorted((project / folder).rglob("*"))
            if p.is_file()
        }
        theirs = {
            p.relative_to(other): p.read_bytes()
            for p in sorted((other / folder).rglob("*"))
            if p.is_file()
        }
        assert mine == theirs, folder
    assert (project / "dvc.lock").read_text() == (other / "dvc.lock").read_text()


def test_editing_a_crop_param_reruns_only_that_crop(project):
    with _repro_with_params_edit(project, "      margin: 0.1\n", "      margin: 0.15\n") as output:
        assert "Running stage 'crop@fer2013'" in output
        assert "Running stage 'crop@affectnet'" not in output
        assert "Running stage 'ingest@" not in output


def test_train_and_evaluate_write_metrics(project):
    import json

    metrics = json.loads((project / "metrics" / "eval" / "metrics.json").read_text())
    assert metrics["test_images"] > 0 and 0 <= metrics["accuracy"] <= 1
    assert (project / "models" / "model.pt").exists()
    assert (project / "metrics" / "eval" / "confusion.png").exists()
    shown = _run(["dvc", "metrics", "show", "--json"], project)
    assert "accuracy" in shown.stdout


def test_stats_on_stage_outputs(project):
    outs = sorted(
        str(p)
        for stage in ("ingest", "crop")
        for p in (project / "data" / "interim" / stage).iterdir()
        if p.is_dir()
    )
    result = _run(["fer-data", "stats", *outs], project)
    assert (
        "fer2013" in result.stdout
        and "affectnet" in result.stdout
        and "crop_status" in result.stdout
    )
