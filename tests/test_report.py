"""`fer-data report`: the page's figures match the stage summaries, and it loads in a real
headless Chromium without console errors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fer.dataset import read_summary
from fer.report import ProjectOutputs, funnel, render_report


def _outputs(root: Path) -> ProjectOutputs:
    names = sorted(p.name for p in (root / "ingest").iterdir())
    return ProjectOutputs(
        ingest={n: root / "ingest" / n for n in names},
        crop={n: root / "crop" / n for n in names},
        dedup=root / "dedup",
        balance=root / "balance",
        processed=root / "processed",
    )


def test_funnel_matches_the_summaries(sample_pipeline):
    steps = {s["step"]: s for s in funnel(_outputs(sample_pipeline))}
    ingest = [read_summary(p) for p in (sample_pipeline / "ingest").iterdir()]
    assert steps["raw rows and files"]["rows"] == sum(s["total"] for s in ingest)
    assert steps["ingested"]["rows"] == sum(s["kept"] for s in ingest)
    assert sum(steps["ingested"]["rejects"].values()) == sum(s["rejected"] for s in ingest)
    balance = read_summary(sample_pipeline / "balance")
    assert steps["balanced"]["rows"] == balance["kept"]
    assert steps["balanced"]["rejects"] == balance["rejected_by_reason"]
    assert steps["processed (split)"]["rows"] == read_summary(sample_pipeline / "processed")["kept"]
    rows = [s["rows"] for s in steps.values()]
    assert rows == sorted(rows, reverse=True)  # a funnel only narrows


def test_report_loads_in_headless_chromium(sample_pipeline, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium (.ci/run installs Debian's package)")
    page_file = tmp_path / "report.html"
    figures = render_report(_outputs(sample_pipeline), page_file)
    errors: list[str] = []
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_file.as_uri())
        screenshot = Path(os.environ.get("FER_REPORT_SCREENSHOT", tmp_path / "report.png"))
        page.screenshot(path=str(screenshot), full_page=True)
        shown = {
            step: page.locator(f'[data-cell="funnel:{step}:rows"]').inner_text()
            for step in figures["funnel"]
        }
        images = page.locator("img").count()
        broken = page.evaluate(
            "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length"
        )
        browser.close()
    assert errors == []
    assert {k: int(v.replace(",", "")) for k, v in shown.items()} == figures["funnel"]
    assert images >= 4 and broken == 0  # funnel, contact sheets, galleries
    assert screenshot.stat().st_size > 10_000
