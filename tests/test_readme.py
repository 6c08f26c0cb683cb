"""The README's tables describe the code as it is: reject reasons, params, formats, columns."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from fer.config import CropRuntime, CropSettings, IngestParams, StorageParams
from fer.dataset import CROP_SCHEMA
from fer.formats import formats

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

# Reasons built at run time rather than written as `Rejection("...")`.
DYNAMIC_REASONS = {
    "ferplus_unknown": "fer/formats/fer2013_csv.py",  # f"ferplus_{winner}"
    "ferplus_nf": "fer/formats/fer2013_csv.py",
    "duplicate_id": "fer/dataset.py",
    "truncated_image": "fer/images.py",
    "no_face": "fer/crop/__init__.py",  # crop_status under `no_face: drop`
    "low_score": "fer/crop/__init__.py",
    "too_small": "fer/crop/__init__.py",
    "dropped_label": "fer/dedup/__init__.py",
    "unmapped_label": "fer/dedup/__init__.py",
    "duplicate": "fer/dedup/groups.py",
    "label_conflict": "fer/dedup/groups.py",
    "over_class_cap": "fer/balance.py",
}


def _section(title: str) -> str:
    start = README.index(title)
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def _code_reasons() -> set[str]:
    found = set()
    for path in (ROOT / "fer").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "Rejection"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(node.args[0].value)
    return found


def _readme_reasons() -> set[str]:
    table = [line for line in README.splitlines() if line.startswith("| ")]
    start = table.index(next(line for line in table if line.startswith("| stage | reason")))
    rows = [line.split("|")[2] for line in table[start + 1 :] if line.count("|") >= 4]
    names = set()
    for cell in rows:
        names.update(re.findall(r"`([a-z_<>]+)`", cell))
        if "`crop_<status>`" in cell:
            break
    return names


def test_every_reject_reason_is_in_the_readme_and_back():
    for reason, file in DYNAMIC_REASONS.items():
        assert reason in (ROOT / file).read_text() or reason.startswith("ferplus_"), reason
    code = _code_reasons() | set(DYNAMIC_REASONS)
    readme = _readme_reasons() - {"crop_<status>", "crop_no_face", "crop_too_small"}
    assert code - readme == set(), "reasons the README does not list"
    assert readme - code == set(), "reasons the README lists that the code never gives"


def test_params_tables_name_real_keys():
    sections = {"ingest": IngestParams, "storage": StorageParams}
    for key in re.findall(r"^\| `(ingest|storage)\.(\w+)`", README, flags=re.M):
        assert key[1] in sections[key[0]].model_fields, key
    for model in (IngestParams, StorageParams):
        section = "ingest" if model is IngestParams else "storage"
        for field in model.model_fields:
            assert f"`{section}.{field}`" in README, field
    crop = _section("## Face re-cropping")
    for field in CropSettings.model_fields:
        assert f"`{field}`" in crop, field
    for field in CropRuntime.model_fields:
        assert f"`{field}`" in crop, field
    listed = set(re.findall(r"^\| `(\w+)`", crop, flags=re.M))
    assert listed <= set(CropSettings.model_fields)


def test_formats_table_lists_the_registered_formats():
    listed = set(re.findall(r"^\| `(\w+)` \|", _section("## Bring your real data"), flags=re.M))
    listed -= {f"{s}.{k}" for s in ("ingest", "storage") for k in ("workers",)}
    formats_listed = {
        name for name in listed if name in formats() or name.endswith(("_csv", "_folder"))
    }
    assert formats_listed == set(formats())


def test_schema_tables_name_every_column():
    schema = _section("## Output schema")
    for name in CROP_SCHEMA.names:
        assert f"`{name}`" in schema, name
