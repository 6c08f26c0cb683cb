from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fer.config import TrainParams
from fer.dataset import SPLIT_SCHEMA, DatasetWriter
from fer.errors import FerDataError
from fer.evaluate import CONFUSION_PNG, METRICS_JSON, PER_CLASS_JSON, evaluate_model
from fer.labels import CLASSES
from fer.models import MODEL_NAMES, build_model
from fer.train import load_checkpoint, train_model
from tests.conftest import encode, face_like

TINY = TrainParams(model="resnet18", image_size=32, batch_size=16, epochs=1, device="cpu")


@pytest.mark.parametrize("name", [*MODEL_NAMES, "resnet18"])
def test_forward_backward_every_model(name):
    torch.manual_seed(0)
    model = build_model(name, len(CLASSES), image_size=64)
    images, labels = torch.randn(2, 3, 64, 64), torch.tensor([0, 6])
    logits = model(images)
    assert logits.shape == (2, len(CLASSES))
    loss = torch.nn.functional.cross_entropy(logits, labels)
    assert torch.isfinite(loss)
    loss.backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name


def test_swin_se_resnet_at_the_seed_resolution():
    model = build_model("swin_se_resnet", len(CLASSES), image_size=224).eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 7)


def _processed(folder: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """A split-stage-shaped dataset of synthetic faces: per split, images per class."""
    rows, index = [], 0
    for split, count in per_class.items():
        for label_index, label in enumerate(CLASSES):
            for _ in range(count):
                pixels = face_like(48, seed=seed + index)
                pixels = np.clip(pixels.astype(int) + 20 * label_index - 60, 0, 255).astype(
                    np.uint8
                )
                rows.append(
                    {
                        "id": f"s/{index:05d}",
                        "split": split,
                        "label": label,
                        "label_index": label_index,
                        "bytes": encode(Image.fromarray(pixels), "PNG"),
                    }
                )
                index += 1
    columns = {f.name: None for f in SPLIT_SCHEMA}
    with DatasetWriter(folder, SPLIT_SCHEMA, 2**20, {"stage": "split"}) as writer:
        for row in sorted(rows, key=lambda r: r["id"]):
            writer.add(
                {
                    **columns,
                    "id": row["id"],
                    "source": "s",
                    "source_label": row["label"],
                    "label": row["label"],
                    "label_index": row["label_index"],
                    "split": row["split"],
                    "width": 48,
                    "height": 48,
                    "channels": 1,
                    "notes": [],
                    "pixel_hash": row["id"],
                    "original_width": 48,
                    "original_height": 48,
                    "crop_status": "ok",
                    "crop_faces": 1,
                    "frame_hash": "0",
                    "face_hash": "0",
                    "dup_group": row["id"],
                    "dup_group_size": 1,
                    "dup_kind": "",
                    "dup_keeper": True,
                    "label_conflict": False,
                    "dedup_keep": True,
                    "dedup_reason": "",
                    "related_group": row["id"],
                    "related_group_size": 1,
                    "split_group": row["id"],
                    "image": {"bytes": row["bytes"], "path": None},
                },
                row["id"],
            )
        writer.close()
    return folder


def test_one_epoch_writes_checkpoint_metrics_and_evaluation(tmp_path):
    processed = _processed(tmp_path / "processed", {"train": 6, "val": 2, "test": 2})
    result = train_model(processed, TINY, tmp_path / "model.pt", tmp_path / "live")
    assert result["epochs_run"] == 1 and result["device"] == "cpu"
    saved = torch.load(tmp_path / "model.pt", weights_only=False)
    assert saved["model"] == "resnet18" and saved["classes"] == list(CLASSES)
    live = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert {"train", "val"} <= set(live) and {"loss", "acc", "f1_weighted"} <= set(live["val"])
    assert (tmp_path / "live" / "plots" / "metrics" / "val" / "acc.tsv").exists()

    metrics = evaluate_model(processed, tmp_path / "model.pt", tmp_path / "eval", device="cpu")
    written = json.loads((tmp_path / "eval" / METRICS_JSON).read_text())
    assert written["test_images"] == 14 == metrics["test_images"]
    assert 0 <= written["accuracy"] <= 1 and "f1_weighted" in written and "f1_macro" in written
    per_class = json.loads((tmp_path / "eval" / PER_CLASS_JSON).read_text())
    assert set(per_class) == set(CLASSES)
    with Image.open(tmp_path / "eval" / CONFUSION_PNG) as picture:
        assert picture.format == "PNG"


def test_a_model_overfits_32_images():
    from skimage import data as skdata

    torch.manual_seed(0)
    faces = torch.tensor(
        skdata.lfw_subset()[:32], dtype=torch.float32
    )  # 32 different people, 25x25
    images = torch.nn.functional.interpolate(faces[:, None], size=32, mode="bilinear").expand(
        -1, 3, -1, -1
    )
    labels = torch.arange(32) % len(CLASSES)
    model = build_model("resnet18", len(CLASSES), 32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    model.eval()
    with torch.inference_mode():
        accuracy = (model(images).argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.9


def test_empty_split_is_a_clear_error(tmp_path):
    processed = _processed(tmp_path / "p", {"train": 2, "test": 1})
    with pytest.raises(FerDataError, match="val split is empty"):
        train_model(processed, TINY, tmp_path / "m.pt", tmp_path / "live")


def test_class_missing_from_train_is_a_clear_error(tmp_path):
    processed = _processed(tmp_path / "p", {"train": 1, "val": 1})
    from fer.dataset import read_table

    table = read_table(processed).to_pylist()
    smaller = tmp_path / "q"
    with DatasetWriter(smaller, SPLIT_SCHEMA, 2**20, {"stage": "split"}) as writer:
        for row in table:
            if not (row["split"] == "train" and row["label"] == "disgust"):
                writer.add(row, row["id"])
        writer.close()
    with pytest.raises(FerDataError, match="no training images of disgust"):
        train_model(smaller, TINY, tmp_path / "m.pt", tmp_path / "live")


def test_checkpoint_of_the_wrong_architecture_is_a_clear_error(tmp_path):
    torch.save(
        {"model": "resnet50", "state_dict": build_model("resnet50", 7, 32).state_dict()},
        tmp_path / "a.pt",
    )
    with pytest.raises(FerDataError, match="'resnet50' checkpoint, not 'resnet18'"):
        load_checkpoint(build_model("resnet18", 7, 32), tmp_path / "a.pt", "resnet18")
    torch.save(build_model("resnet50", 7, 32).state_dict(), tmp_path / "b.pt")
    with pytest.raises(FerDataError, match="does not fit model 'resnet18'"):
        load_checkpoint(build_model("resnet18", 7, 32), tmp_path / "b.pt", "resnet18")
    with pytest.raises(FerDataError, match="checkpoint not found"):
        train_model(
            tmp_path,
            TINY.model_copy(update={"checkpoint": str(tmp_path / "none.pt")}),
            tmp_path / "m",
            tmp_path / "l",
        )


def test_evaluate_needs_a_test_split(tmp_path):
    processed = _processed(tmp_path / "p", {"train": 2, "val": 1})
    train_model(processed, TINY, tmp_path / "m.pt", tmp_path / "live")
    with pytest.raises(FerDataError, match="test split is empty"):
        evaluate_model(processed, tmp_path / "m.pt", tmp_path / "eval", device="cpu")


def _stream_ids(processed: Path, workers: int, epoch: int, **options) -> list[list[str]]:
    from torch.utils.data import DataLoader

    from fer.stream import SplitStream
    from fer.train import transforms_for

    stream = SplitStream(
        processed,
        "train",
        5,
        transforms_for(TINY, True),
        seed=7,
        shuffle=True,
        shuffle_buffer=8,
        drop_last=True,
        with_ids=True,
        **options,
    )
    stream.set_epoch(epoch)
    batches = list(DataLoader(stream, batch_size=None, num_workers=workers))
    assert len(batches) == len(stream)
    return [list(ids) for _, _, ids in batches], [images for images, _, _ in batches]


def _many_row_groups(tmp_path: Path, per_class: int) -> Path:
    from fer.dataset import read_table

    table = read_table(_processed(tmp_path / "one", {"train": per_class, "val": 1, "test": 1}))
    out = tmp_path / "many"
    with DatasetWriter(out, SPLIT_SCHEMA, 2**20, {"stage": "split"}, rows_per_group=6) as writer:
        writer.add_table(table)
        writer.close()
    return out


def test_stream_order_and_augmentation_do_not_depend_on_workers(tmp_path):
    processed = _many_row_groups(tmp_path, 4)  # 28 train rows in row groups of 6
    ids0, images0 = _stream_ids(processed, 0, epoch=0)
    for workers in (1, 2):
        ids, images = _stream_ids(processed, workers, epoch=0)
        assert ids == ids0
        assert all(torch.equal(a, b) for a, b in zip(images, images0, strict=True))
    flat = [i for batch in ids0 for i in batch]
    assert len(flat) == len(set(flat)) == 25  # five full batches of 5; 3 rows dropped
    ids1, _ = _stream_ids(processed, 0, epoch=1)
    assert ids1 != ids0  # another epoch, another order
    assert _stream_ids(processed, 2, epoch=1)[0] == ids1


def test_ranks_stream_disjoint_shares_of_equal_length(tmp_path):
    processed = _many_row_groups(tmp_path, 4)
    shares = [_stream_ids(processed, 0, epoch=3, rank=r, world=2)[0] for r in (0, 1)]
    assert len(shares[0]) == len(shares[1]) > 0
    first, second = ({i for b in share for i in b} for share in shares)
    assert not first & second


def test_stream_yields_every_row_of_its_split_once(tmp_path):
    from fer.stream import SplitStream

    processed = _many_row_groups(tmp_path, 4)
    stream = SplitStream(
        processed,
        "train",
        4,
        lambda image: torch.zeros(1),
        shuffle=True,
        shuffle_buffer=3,
        with_ids=True,
    )
    seen = [i for _, _, ids in stream for i in ids]
    assert len(seen) == len(set(seen)) == 28 == stream.rows
    assert stream.label_counts.tolist() == [4] * 7
    assert seen != sorted(seen)


def test_metrics_from_confusion_match_sklearn():
    from sklearn.metrics import f1_score

    from fer.train import metrics_from_confusion

    rng = np.random.default_rng(0)
    truth, guess = rng.integers(0, 7, 300), rng.integers(0, 7, 300)
    guess[:100] = truth[:100]
    truth[truth == 3] = 2  # a class never true
    matrix = np.zeros((7, 7))
    np.add.at(matrix, (truth, guess), 1)
    metrics = metrics_from_confusion(matrix, 600.0)
    assert metrics["loss"] == 2.0
    assert metrics["acc"] == pytest.approx(float((truth == guess).mean()))
    assert metrics["f1_weighted"] == pytest.approx(
        f1_score(truth, guess, average="weighted", zero_division=0)
    )


def test_two_process_gloo_ddp_trains_and_evaluates(tmp_path):
    import subprocess
    import sys

    import yaml

    root = Path(__file__).resolve().parents[1]
    processed = _many_row_groups(tmp_path, 4)
    params = {
        "sources": {"s": {"format": "image_folder", "path": "raw/s"}},
        "train": {**TINY.model_dump(), "processes": 2, "epochs": 2},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = subprocess.run(
        [
            sys.executable,
            str(root / "pipeline" / "train.py"),
            str(processed),
            str(tmp_path / "model.pt"),
            str(tmp_path / "live"),
            "--params",
            str(tmp_path / "params.yaml"),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "x 2 process(es)" in done.stdout
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["model"] == "resnet18"
    live = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert live["step"] == 1 and 0 <= live["val"]["acc"] <= 1
    metrics = evaluate_model(processed, tmp_path / "model.pt", tmp_path / "eval", device="cpu")
    assert metrics["test_images"] == 7
