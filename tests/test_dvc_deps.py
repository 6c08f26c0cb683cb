"""dvc.yaml declares, for every stage, each project file its script imports (transitively).

A stage whose code changed must not look clean to `dvc status`: derive the imports of
`pipeline/<stage>.py` from the source (every `import`, at any depth, plus packages that import
all their modules) and check that a dep covers each file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _module_file(name: str) -> Path | None:
    base = ROOT / Path(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.removesuffix(".__init__")
    else:
        package = package.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    if "pkgutil.iter_modules(__path__)" in path.read_text():
        found.update(f"{package}.{p.stem}" for p in path.parent.glob("*.py"))
    return found


def project_files(script: Path) -> set[Path]:
    """`script` and every project file it imports, transitively (package __init__s included)."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            if not name.startswith("fer"):
                continue
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                file = _module_file(".".join(parts[:depth]))
                if file is not None and file not in seen:
                    todo.append(file)
    return seen


def missing_deps(stage: dict) -> list[str]:
    """Files the stage's script needs that none of its deps covers."""
    script = next(w for w in stage["cmd"].split() if w.startswith("pipeline/"))
    deps = [ROOT / d for d in stage.get("deps", []) if not d.startswith("${") and "data/" not in d]
    needed = project_files(ROOT / script)
    return sorted(
        str(f.relative_to(ROOT)) for f in needed if not any(f == d or d in f.parents for d in deps)
    )


def _stages() -> dict[str, dict]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: spec.get("do", spec) for name, spec in stages.items()}


@pytest.mark.parametrize("name", sorted(_stages()))
def test_every_imported_file_is_a_dep(name):
    assert missing_deps(_stages()[name]) == []


def test_the_check_fails_when_a_dep_is_removed():
    stage = _stages()["crop"]
    assert "fer/images.py" in stage["deps"]
    reduced = {**stage, "deps": [d for d in stage["deps"] if d != "fer/images.py"]}
    assert missing_deps(reduced) == ["fer/images.py"]


def test_imports_are_found_at_any_depth():
    # train imports fer.models inside its functions, crop imports the detector lazily.
    assert ROOT / "fer/models.py" in project_files(ROOT / "pipeline/train.py")
    assert ROOT / "fer/crop/detector.py" in project_files(ROOT / "pipeline/crop.py")
