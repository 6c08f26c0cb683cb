"""The `fer-data` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fer.errors import FerDataError, exit_with

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Curate facial-expression datasets: sample data, stage statistics, export, audit.",
)


@app.command()
def stats(
    paths: Annotated[list[Path], typer.Argument(help="Stage output folders or .parquet files.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write a bar chart PNG here.")] = None,
) -> None:
    """Class counts per source, split counts and rejects by reason for stage outputs."""
    from fer.stats import collect_stats, plot_stats, render_stats

    collected = [collect_stats(p) for p in paths]
    if as_json:
        typer.echo(json.dumps(collected, indent=2))
    else:
        render_stats(collected)
    if plot is not None:
        plot_stats(collected, plot)
        if not as_json:
            typer.echo(f"wrote {plot}")


@app.command()
def sample(
    out_dir: Annotated[Path, typer.Argument(help="Where to write the raw sample (e.g. data/raw).")],
) -> None:
    """Write the bundled sample: a FER2013-format CSV and an AffectNet-style folder tree."""
    from fer.sample import write_sample

    truth = write_sample(out_dir)
    typer.echo(
        f"wrote sample to {out_dir}: {truth['counts']['fer2013_rows']} FER2013 CSV rows, "
        f"{truth['counts']['affectnet_files']} AffectNet files, ground truth in "
        f"{out_dir / 'sample_ground_truth.json'}"
    )


@app.command()
def export(
    out_dir: Annotated[Path, typer.Argument(help="New folder to write.")],
    fmt: Annotated[str, typer.Option("--format", help="imagefolder or parquet.")] = "imagefolder",
    source: Annotated[Path, typer.Option("--from", help="The split stage output.")] = Path(
        "data/processed"
    ),
) -> None:
    """Export the processed dataset: OUT/<split>/<class>/<id>.png or OUT/<split>.parquet."""
    from fer.export import export_dataset

    counts = export_dataset(source, out_dir, fmt)
    typer.echo(f"wrote {out_dir} ({fmt}): " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@app.command()
def audit(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Folders whose first-level folders are splits (class folders below), or "
            "FER2013 CSVs (splits from Usage)."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    gallery: Annotated[
        Path | None, typer.Option(help="Draw the duplicate groups that span splits (PNG).")
    ] = None,
    faces: Annotated[bool, typer.Option("--faces", help="Count images without a face.")] = False,
    fail_on_leak: Annotated[
        bool, typer.Option("--fail-on-leak", help="Exit 1 when a duplicate group spans splits.")
    ] = False,
) -> None:
    """Does an existing split leak? Duplicates (and related faces) across splits, label
    conflicts, with the dedup stage's hashing and pair decisions; no project needed."""
    import time

    from fer.audit import audit_paths, render_audit

    start = time.perf_counter()
    report = audit_paths(paths, faces=faces, gallery=gallery, progress=not as_json)
    report["seconds"] = round(time.perf_counter() - start, 1)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        render_audit(report, report["seconds"])
        if gallery is not None:
            typer.echo(f"wrote {gallery}")
    if fail_on_leak and report["cross_split_groups"] > 0:
        raise typer.Exit(1)


@app.command()
def report(
    out: Annotated[Path, typer.Argument(help="The HTML file to write.")],
    project: Annotated[Path, typer.Option(help="The project folder (after dvc repro).")] = Path(
        "."
    ),
) -> None:
    """One self-contained HTML page: funnel with reject reasons, label x split x source, crops,
    duplicate and related galleries, cross-source contamination, subjects, metrics."""
    from fer.report import ProjectOutputs, render_report

    render_report(ProjectOutputs.of_project(project), out)
    typer.echo(f"wrote {out}")


def main() -> None:
    """Console entry point."""
    try:
        app(standalone_mode=False)
    except FerDataError as exc:
        exit_with(exc)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from exc
    except typer.Abort:
        raise SystemExit(1) from None
    except Exception as exc:
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from exc
        raise
