"""Tiny synthetic inputs, built per test; real-data fixtures only when ../shared/data exists."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer.config import IngestParams

SHARED_ENV = "FER_DATA_SHARED"
REPO_ROOT = Path(__file__).resolve().parents[1]


def face_like(side: int = 48, seed: int = 0) -> np.ndarray:
    """A smooth grayscale blob with two dark 'eyes': enough structure for codecs and hashes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    pixels = 150 + 60 * np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.08)
    for ex in (0.35, 0.65):
        pixels -= 90 * np.exp(-((x - ex) ** 2 + (y - 0.4) ** 2) / 0.004)
    pixels += rng.normal(0, 6, pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str = "JPEG", **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def pixels_text(pixels: np.ndarray) -> str:
    return " ".join(map(str, pixels.ravel().tolist()))


@pytest.fixture
def ingest_params() -> IngestParams:
    return IngestParams(workers=1, max_image_pixels=4_000_000)


@pytest.fixture
def write_files(tmp_path: Path) -> Callable[[dict[str, bytes]], Path]:
    """Write {relative path: bytes} under a fresh folder and return that folder."""

    def write(files: dict[str, bytes], folder: str = "images") -> Path:
        root = tmp_path / folder
        for relative, payload in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload)
        root.mkdir(parents=True, exist_ok=True)
        return root

    return write


@pytest.fixture(scope="session")
def shared_data() -> Path:
    value = os.environ.get(SHARED_ENV)
    if not value or not Path(value).is_dir():
        candidate = REPO_ROOT.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
        pytest.skip(f"real data not available (set {SHARED_ENV} to ../shared/data)")
    return Path(value)


@pytest.fixture(scope="session")
def real_fer2013_csv(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full 35,887-row FER2013 CSV, rebuilt once per session by the shared make_csv.py."""
    out = tmp_path_factory.mktemp("real") / "fer2013.csv"
    subprocess.run(
        [sys.executable, str(shared_data / "fer2013" / "make_csv.py"), str(out)],
        check=True,
        capture_output=True,
    )
    return out


def run_to_dedup(params, root: Path) -> Path:
    """Every source of `params` through ingest and crop (on the CPU), then dedup, under root:
    ingest/<source>, crop/<source>, dedup. Returns the dedup folder."""
    from fer.config import CropRuntime
    from fer.crop import crop_source
    from fer.dedup import dedup_sources
    from fer.ingest import ingest_source

    for name, source in params.sources.items():
        ingest_source(source, IngestParams(workers=1), root / "ingest" / name, progress=False)
        crop_source(
            root / "ingest" / name,
            params.crop[name],
            CropRuntime(device="cpu"),
            root / "crop" / name,
            progress=False,
        )
    dedup_sources(
        {n: root / "crop" / n for n in params.sources},
        {n: root / "ingest" / n for n in params.sources},
        params.dedup,
        root / "dedup",
        progress=False,
    )
    return root / "dedup"


@pytest.fixture(scope="session")
def sample_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample through every data stage with the repository's params.yaml.

    Folders: raw/, ingest/<source>/, crop/<source>/, dedup/, balance/, processed/.
    """
    from fer.balance import balance_dataset
    from fer.config import load_params
    from fer.sample import write_sample
    from fer.split import split_dataset

    root = tmp_path_factory.mktemp("pipeline")
    write_sample(root / "raw")
    text = (REPO_ROOT / "params.yaml").read_text().replace("data/raw/", "raw/")
    (root / "params.yaml").write_text(text)
    params = load_params(root / "params.yaml")
    run_to_dedup(params, root)
    balance_dataset(root / "dedup", params.balance, root / "balance", progress=False)
    split_dataset(root / "balance", params.split, root / "processed", progress=False)
    return root
