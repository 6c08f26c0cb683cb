"""The canonical 7-class taxonomy and the maps from each source's own labels onto it."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from fer.registry import Registry

__all__ = ["CLASSES", "PRESETS", "LabelMap", "register_preset", "resolve_label_map"]

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""FER2013 index order: the canonical label of class i is CLASSES[i]."""

LabelMap = Mapping[str, "str | None"]
"""source_label -> canonical class, or None for a label that is dropped on purpose."""

_NAMES: dict[str, str | None] = {
    **dict.fromkeys(("angry", "anger", "annoyed", "mad"), "angry"),
    **dict.fromkeys(("disgust", "disgusted", "disgusting"), "disgust"),
    **dict.fromkeys(("fear", "fearful", "afraid", "scared"), "fear"),
    **dict.fromkeys(("happy", "happiness", "joy", "happily"), "happy"),
    **dict.fromkeys(("sad", "sadness", "sadly"), "sad"),
    **dict.fromkeys(("surprise", "surprised", "suprise"), "surprise"),
    **dict.fromkeys(("neutral", "calm"), "neutral"),
    **dict.fromkeys(("contempt", "none", "uncertain", "unknown", "noface", "no_face", "nf"), None),
}
PRESETS: Registry[LabelMap] = Registry("label preset")
"""Preset label maps by name; a format module registers the presets of its label order."""
_BUILT_IN: dict[str, LabelMap] = {
    # FER2013 `emotion` indices.
    "fer2013": MappingProxyType({str(i): name for i, name in enumerate(CLASSES)}),
    # AffectNet's official expression indices; 7..10 are contempt and non-expressions.
    "affectnet": MappingProxyType(
        {
            "0": "neutral",
            "1": "happy",
            "2": "sad",
            "3": "surprise",
            "4": "fear",
            "5": "disgust",
            "6": "angry",
            "7": None,
            "8": None,
            "9": None,
            "10": None,
        }
    ),
    # Folder and class names (Kaggle AffectNet, FER2013 folders, CK+, FER+), case-insensitive.
    "names": MappingProxyType(_NAMES),
}


def register_preset(name: str, label_map: Mapping[str, str | None]) -> None:
    """Add a named preset (a format's own label order); its classes must be canonical."""
    bad = sorted({v for v in label_map.values() if v is not None and v not in CLASSES})
    if bad:
        raise ValueError(f"preset {name!r} maps onto {bad}, which are not classes")
    PRESETS.register(name, MappingProxyType(dict(label_map)))


for _name, _map in _BUILT_IN.items():
    register_preset(_name, _map)


def resolve_label_map(
    spec: str | Mapping[str, str | None] | None, default_preset: str
) -> dict[str, str | None]:
    """A preset name, an explicit map, or None (the source's default preset) as a plain dict.

    An explicit map may start from a preset with the key `preset:` and override entries.
    """
    if spec is None:
        spec = default_preset
    if isinstance(spec, str):
        return dict(PRESETS[spec])
    base = dict(PRESETS[spec["preset"]]) if "preset" in spec else {}
    base.update({str(k): v for k, v in spec.items() if k != "preset"})
    return base
