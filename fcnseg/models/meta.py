"""What a model is, beyond its weights: the typed metadata every FCN carries and every model
file stores.

:class:`ModelMeta` is read from a file through :meth:`ModelMeta.from_json`, which checks every
field's type and range *before* anything is built or allocated, so a damaged or hostile file
is one clear line, never a ``KeyError`` or a 12 GB allocation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import CheckpointError
from .normalization import Normalization
from .registries import BACKBONES, MODELS

__all__ = ["MAX_CLASSES", "ModelMeta"]

Color = tuple[int, int, int]
# More classes than any segmentation benchmark has (ADE20K-full: 3688); a file claiming more
# is damaged, and believing it would allocate score layers of that width.
MAX_CLASSES = 65536


@dataclass(frozen=True)
class ModelMeta:
    """Everything that rebuilds an FCN and names its outputs.

    Attributes:
        variant: ``fcn32s``, ``fcn16s``, ``fcn8s`` (a name of :func:`fcnseg.list_models`).
        backbone: a name of :func:`fcnseg.list_backbones` or ``timm:<name>``.
        geometry: ``modern`` or ``caffe``.
        num_classes: number of classes scored.
        normalization: the input normalisation the weights were trained with, one mean and
            std per input channel (so it also says :attr:`in_channels`).
        at_once: skips scaled as the PAMI all-at-once nets.
        classes: class names, one per class, or ``None``.
        palette: one RGB colour per class, or ``None``.
        ignore_index: the label of ignored pixels in the training data, or ``None``.
        extra: anything else JSON-serialisable (training scores, epoch, step).
    """

    variant: str
    backbone: str
    geometry: str
    num_classes: int
    normalization: Normalization
    at_once: bool = False
    classes: tuple[str, ...] | None = None
    palette: tuple[Color, ...] | None = None
    ignore_index: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def in_channels(self) -> int:
        """Input channels (3 for RGB), one home: the normalisation has one entry per channel."""
        return self.normalization.channels

    def with_(self, **changes: Any) -> ModelMeta:
        """A copy with ``changes``: known fields replaced, other keys added to ``extra``."""
        known = {f.name for f in fields(self)} - {"extra"}
        extra = {**self.extra, **{k: v for k, v in changes.items() if k not in known}}
        own = {k: v for k, v in changes.items() if k in known}
        return ModelMeta.from_json(
            {**self.to_json(), **_plain(own), **extra},
            source="model metadata",
            fix="pass plain lists and numbers",
        )

    def to_json(self) -> dict[str, Any]:
        """A flat JSON mapping: the fields (normalisation as a mapping), then ``extra``'s keys."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out["normalization"] = self.normalization.to_dict()
        out["classes"] = list(self.classes) if self.classes is not None else None
        out["palette"] = [list(c) for c in self.palette] if self.palette is not None else None
        return {**self.extra, **out}

    @classmethod
    def from_json(
        cls,
        data: Any,
        *,
        source: str,
        fix: str = "the file is damaged or not an fcnseg model: save or export it "
        "again with fcnseg",
    ) -> ModelMeta:
        """Check and read :meth:`to_json`'s form; ``source`` names the file in messages and
        ``fix`` says what to do."""

        def bad(what: str) -> CheckpointError:
            return CheckpointError(f"{source}: {what}; {fix}")

        if not isinstance(data, dict):
            raise bad("metadata is not a mapping")
        for key in ("variant", "backbone", "geometry", "num_classes", "normalization"):
            if key not in data:
                raise bad(f"metadata has no {key}")
        variant, backbone, geometry = data["variant"], data["backbone"], data["geometry"]
        if not isinstance(variant, str) or variant not in MODELS:
            raise bad(f"unknown variant {variant!r} (known: {', '.join(MODELS.names())})")
        if not isinstance(backbone, str) or not (
            backbone in BACKBONES and backbone != "timm" or backbone.startswith("timm:")
        ):
            raise bad(f"unknown backbone {backbone!r}")
        if geometry not in ("modern", "caffe"):
            raise bad(f"unknown geometry {geometry!r}")
        n = data["num_classes"]
        if not _is_int(n) or not 1 <= n <= MAX_CLASSES:
            raise bad(f"num_classes {n!r} is not a whole number in 1–{MAX_CLASSES}")
        at_once = data.get("at_once", False)
        if not isinstance(at_once, bool):
            raise bad(f"at_once {at_once!r} is not true or false")
        classes = data.get("classes")
        if classes is not None:
            if not (
                isinstance(classes, list)
                and len(classes) == n
                and all(isinstance(c, str) for c in classes)
            ):
                raise bad(f"classes must be {n} names")
            classes = tuple(classes)
        palette = data.get("palette")
        if palette is not None:
            if not (
                isinstance(palette, list)
                and len(palette) <= max(n, 256)
                and all(_is_color(c) for c in palette)
            ):
                raise bad("palette must list [r, g, b] colours of 0–255")
            palette = tuple(tuple(c) for c in palette)
        ignore = data.get("ignore_index")
        if ignore is not None and not _is_int(ignore):
            raise bad(f"ignore_index {ignore!r} is not a whole number")
        normalization = Normalization.from_dict(data["normalization"], source=source)
        known = {f.name for f in fields(cls)}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(
            variant, backbone, geometry, n, normalization, at_once, classes, palette, ignore, extra
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_color(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 3
        and all(_is_int(v) and 0 <= v <= 255 for v in value)
    )


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Typed values as JSON would hold them (tuples as lists, normalisation as a mapping)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Normalization):
            value = value.to_dict()
        elif isinstance(value, Sequence) and not isinstance(value, str):
            value = [list(v) if isinstance(v, (tuple, list)) else v for v in value]
        elif isinstance(value, float) and not math.isfinite(value):
            value = None
        out[key] = value
    return out
