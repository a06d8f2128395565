"""How a net wants its input: the one piece of preprocessing an FCN carries with it.

Normalisation is a model concern, not a dataset's (docs/CONTRACTS.md): every model holds its
own, so data, training, prediction and export all agree.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import CheckpointError

__all__ = ["CAFFE_BGR", "IMAGENET", "Normalization"]


@dataclass(frozen=True)
class Normalization:
    """``(x - mean) / std`` in 0–255 units, channels in RGB or BGR order."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    bgr: bool = False

    def __call__(self, images: Tensor) -> Tensor:
        """Normalise an RGB batch (or image) of 0–255 values, uint8 or float."""
        x = images.float()
        if self.bgr:
            x = x.flip(-3)
        mean = torch.tensor(self.mean, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(3, 1, 1)
        return (x - mean) / std

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "normalization") -> Normalization:
        """Read :meth:`to_dict`'s form back, checking every value."""
        if not isinstance(d, dict):
            raise CheckpointError(
                f"{source}: normalization must be a mapping with mean and "
                "std; save the model again with fcnseg"
            )
        values = {}
        for key in ("mean", "std"):
            v = d.get(key)
            if not (
                isinstance(v, (list, tuple))
                and len(v) == 3
                and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                    for x in v
                )
            ):
                raise CheckpointError(
                    f"{source}: normalization {key} must be three finite "
                    f"numbers, not {v!r}; save the model again with fcnseg"
                )
            values[key] = tuple(float(x) for x in v)
        if any(s == 0 for s in values["std"]):
            raise CheckpointError(
                f"{source}: normalization std has a zero; save the model again with fcnseg"
            )
        bgr = d.get("bgr", False)
        if not isinstance(bgr, bool):
            raise CheckpointError(f"{source}: normalization bgr must be true or false")
        return cls(values["mean"], values["std"], bgr)


IMAGENET = Normalization((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
# The reference nets subtract the mean BGR pixel of ILSVRC and do not scale.
CAFFE_BGR = Normalization((104.00699, 116.66877, 122.67892), (1.0, 1.0, 1.0), bgr=True)
# Nets trained on inputs scaled to [-1, 1] (torchvision's GoogLeNet, EfficientNet-Lite).
SYMMETRIC = Normalization((127.5,) * 3, (127.5,) * 3)
