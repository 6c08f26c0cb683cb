"""Engines: the Ray engine (a local Ray started here) writes the same bytes as the local one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage import data as skdata

from fer.config import CropRuntime, CropSettings
from fer.crop import crop_source
from fer.engine import ENGINES, engines, open_engine
from fer.errors import FerDataError
from tests.test_crop import _astronaut_photo, _resize, make_dataset


def test_engines_are_registered_and_unknown_ones_are_a_clear_error():
    assert {"local", "ray"} <= set(engines())
    with pytest.raises(FerDataError, match=r"engine\.kind: 'spark' is not a known engine"):
        open_engine("spark")
    assert ENGINES["local"].name == "local"


def test_local_and_ray_engines_write_the_same_bytes(tmp_path):
    pytest.importorskip("ray")
    faces = (skdata.lfw_subset() * 255).round().astype(np.uint8)
    images = {f"lfw_{i:02d}": _resize(faces[i], 48) for i in range(12)}
    images |= {f"photo_{i}": _astronaut_photo(side) for i, side in enumerate((200, 640))}
    images["blank"] = np.full((64, 64), 128, np.uint8)
    images["tiny"] = np.full((8, 8), 50, np.uint8)
    src = make_dataset(tmp_path / "in", images)
    settings = CropSettings(pad=0.17, no_face="drop")
    runtime = CropRuntime(device="cpu", batch_size=4)
    outputs = {}
    for kind in ("local", "ray"):
        with open_engine(kind, "", 2) as engine:
            summary = crop_source(
                src, settings, runtime, tmp_path / kind, progress=False, engine=engine
            )
        assert summary["engine"] == kind
        outputs[kind] = {p.name: p.read_bytes() for p in (tmp_path / kind).iterdir()}
    local, ray = outputs["local"], outputs["ray"]
    assert set(local) == set(ray) and len(local) >= 4
    for name in local:
        if name != "summary.json":
            assert local[name] == ray[name], name
    first, second = (json.loads(o["summary.json"]) for o in (local, ray))
    assert {k for k in first if first[k] != second[k]} == {"engine"}
    assert first["total"] == len(images) and first["rejected"] >= 2  # blank and tiny dropped


def test_a_two_node_ray_cluster_writes_the_same_bytes_as_the_local_engine(tmp_path):
    # The cluster recipe (README, Scale): a head and a worker node started apart from the
    # stage, one CPU each, joined by address; the pool's two actors need a CPU each, so one
    # runs on each node.
    pytest.importorskip("ray")
    import ray
    from ray.cluster_utils import Cluster

    faces = (skdata.lfw_subset() * 255).round().astype(np.uint8)
    images = {f"lfw_{i:02d}": _resize(faces[i], 48) for i in range(8)}
    images["photo"] = _astronaut_photo(320)
    src = make_dataset(tmp_path / "in", images)
    settings, runtime = CropSettings(pad=0.17), CropRuntime(device="cpu", batch_size=2)
    with open_engine("local") as engine:
        crop_source(src, settings, runtime, tmp_path / "local", progress=False, engine=engine)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        with open_engine("ray", cluster.address) as engine:
            alive = [node for node in ray.nodes() if node["Alive"]]
            assert len(alive) == 2 and ray.cluster_resources()["CPU"] == 2
            summary = crop_source(
                src, settings, runtime, tmp_path / "cluster", progress=False, engine=engine
            )
        assert not ray.is_initialized()  # the engine leaves a cluster it joined
    finally:
        cluster.shutdown()
    assert summary["engine"] == "ray"
    for path in (tmp_path / "local").iterdir():
        if path.name != "summary.json":
            assert path.read_bytes() == (tmp_path / "cluster" / path.name).read_bytes()


def test_a_domain_error_inside_a_ray_actor_is_one_line(tmp_path):
    pytest.importorskip("ray")
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    src = make_dataset(tmp_path / "in", {"a": _resize(np.full((25, 25), 90, np.uint8), 48)})
    with (
        open_engine("ray", "", 1) as engine,
        pytest.raises(FerDataError, match=r"^params\.yaml: crop\.runtime\.device is cuda"),
    ):
        crop_source(
            src,
            CropSettings(),
            CropRuntime(device="cuda"),
            tmp_path / "out",
            progress=False,
            engine=engine,
        )


def test_dedup_hashing_on_ray_writes_the_same_bytes(tmp_path, sample_pipeline):
    # The sample's sources (planted copies across sources and splits) hashed in two Ray
    # actors versus the local process pool.
    pytest.importorskip("ray")
    from fer.config import load_params
    from fer.dedup import dedup_sources
    from tests.conftest import REPO_ROOT

    params = load_params(REPO_ROOT / "params.yaml")
    names = sorted(p.name for p in (sample_pipeline / "crop").iterdir())
    outputs = {}
    for kind in ("local", "ray"):
        with open_engine(kind, "", 2) as engine:
            summary = dedup_sources(
                {n: sample_pipeline / "crop" / n for n in names},
                {n: sample_pipeline / "ingest" / n for n in names},
                params.dedup,
                tmp_path / kind,
                progress=False,
                engine=engine,
            )
        assert summary["engine"] == kind
        outputs[kind] = {p.name: p.read_bytes() for p in (tmp_path / kind).iterdir()}
    local, ray = outputs["local"], outputs["ray"]
    assert set(local) == set(ray) and len(local) >= 5  # shards, rejects, galleries, summary
    for name in local:
        if name != "summary.json":
            assert local[name] == ray[name], name
    first, second = (json.loads(o["summary.json"]) for o in (local, ray))
    assert {k for k in first if first[k] != second[k]} == {"engine"}
    assert first["duplicate_groups"] > 0
