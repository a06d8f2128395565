"""What a model is, beyond its weights: the typed metadata every FCN carries and every model
file stores.

:class:`ModelMeta` is read from a file through :meth:`ModelMeta.from_json`, which checks every
field's type and range *before* anything is built or allocated, so a damaged or hostile file
is one clear line, never a ``KeyError`` or a 12 GB allocation.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import CheckpointError
from .normalization import Normalization
from .registries import BACKBONES, MODELS

__all__ = ["MAGNIFY", "MAX_CLASSES", "ModelMeta", "check_heads", "is_working_scale"]

Color = tuple[int, int, int]
# More classes than any segmentation benchmark has (ADE20K-full: 3688); a file claiming more
# is damaged, and believing it would allocate score layers of that width.
MAX_CLASSES = 65536
# The range of a model's working scale (``magnify``): enlarging brings structures a pixel or two
# wide up to the few pixels a backbone's first strided layers resolve. At 4 times, inference
# already handles 16 times the pixels; a file claiming more is damaged or a mistake.
MAGNIFY = (1.0, 4.0)


def is_working_scale(value: object) -> bool:
    """Whether ``value`` is a number (not a bool) in :data:`MAGNIFY`."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and MAGNIFY[0] <= value <= MAGNIFY[1]
    )


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
        heads: for a net with several score paths (the paper's two-headed SIFT Flow net), each
            path's name and class count, in output order; ``None`` for one. ``num_classes`` is
            then their sum, and ``classes`` and ``palette`` are the heads' in turn.
        magnify: the working scale: images are enlarged by this factor before the net sees
            them, in training and at inference, and the scores resized back to the image
            (:func:`fcnseg.models.tta.views`); 1 for none.
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
    heads: tuple[tuple[str, int], ...] | None = None
    magnify: float = 1.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def head_slices(self) -> list[tuple[str, slice]]:
        """Each head's name and its channels of the output (one unnamed head if not several)."""
        if self.heads is None:
            return [("", slice(0, self.num_classes))]
        out, start = [], 0
        for name, count in self.heads:
            out.append((name, slice(start, start + count)))
            start += count
        return out

    def head(self, name: str) -> ModelMeta:
        """The metadata of head ``name`` alone: its class count, names and colours."""
        part = dict(self.head_slices())[name]
        return dataclasses.replace(
            self,
            num_classes=part.stop - part.start,
            classes=self.classes[part] if self.classes else None,
            palette=self.palette[part] if self.palette and len(self.palette) >= part.stop else None,
            heads=None,
        )

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
        out["heads"] = [list(h) for h in self.heads] if self.heads is not None else None
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
        heads = _heads(data.get("heads"), n, bad)
        magnify = data.get("magnify", 1.0)
        low, high = MAGNIFY
        if not is_working_scale(magnify):
            raise bad(f"magnify {magnify!r} is not a number in {low:g}–{high:g}")
        normalization = Normalization.from_dict(data["normalization"], source=source)
        known = {f.name for f in fields(cls)}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(
            variant,
            backbone,
            geometry,
            n,
            normalization,
            at_once,
            classes,
            palette,
            ignore,
            heads,
            float(magnify),
            extra,
        )


HEAD_NAME = re.compile(r"[a-z][a-z0-9]{0,15}")
MAX_HEADS = 16


def check_heads(heads: Any) -> str | None:
    """What is wrong with a ``heads`` list of ``[name, classes]`` pairs, or ``None``."""
    if not isinstance(heads, (list, tuple)) or not 2 <= len(heads) <= MAX_HEADS:
        return f"heads must list 2–{MAX_HEADS} [name, classes] pairs"
    for head in heads:
        if not (
            isinstance(head, (list, tuple))
            and len(head) == 2
            and isinstance(head[0], str)
            and HEAD_NAME.fullmatch(head[0])
            and _is_int(head[1])
            and 1 <= head[1] <= MAX_CLASSES
        ):
            return (
                f"head {head!r} is not a [name, classes] pair with a lowercase name of "
                "letters and digits (it names the layers, score_fr_<name>)"
            )
    if len({h[0] for h in heads}) != len(heads):
        return "head names repeat"
    return None


def _heads(value: Any, n: int, bad: Any) -> tuple[tuple[str, int], ...] | None:
    if value is None:
        return None
    problem = check_heads(value)
    if problem:
        raise bad(problem)
    if sum(h[1] for h in value) != n:
        raise bad(f"heads' classes add up to {sum(h[1] for h in value)}, not num_classes {n}")
    return tuple((h[0], h[1]) for h in value)


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
