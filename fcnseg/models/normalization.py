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

__all__ = ["CAFFE_BGR", "IMAGENET", "MAX_CHANNELS", "Normalization"]

# More bands than hyperspectral rasters commonly carry; a file claiming more is damaged.
MAX_CHANNELS = 1024


@dataclass(frozen=True)
class Normalization:
    """``(x - mean) / std`` per input channel, in the units of the pixels (0–255 for 8-bit
    RGB). The first three channels are RGB, or BGR with ``bgr``; any further ones (depth,
    infrared, more bands) follow in the order the images hold them."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    bgr: bool = False

    @property
    def channels(self) -> int:
        """The number of input channels the model takes."""
        return len(self.mean)

    def __call__(self, images: Tensor) -> Tensor:
        """Normalise a batch (or image) of ``channels`` channels, uint8 or float."""
        x = images.float()
        if self.bgr:  # RGB → BGR on the first three channels only
            order = [2, 1, 0, *range(3, x.shape[-3])]
            x = x[..., order, :, :]
        mean = torch.tensor(self.mean, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(-1, 1, 1)
        return (x - mean) / std

    def for_channels(
        self, channels: int, extra: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    ) -> Normalization:
        """This RGB normalisation for images of ``channels`` channels.

        The first three keep their values; channels past them take ``extra`` (means, stds),
        by default 0 and 1 until measured on the data (:func:`fcnseg.data.channel_stats`).
        Fewer than three channels (grey, two bands) take the RGB mean and std averaged, as
        the first convolution sums its RGB filters for them (timm's ``adapt_input_conv``).
        """
        if channels == self.channels:
            return self
        if channels < 3:
            mean, std = sum(self.mean[:3]) / 3, sum(self.std[:3]) / 3
            return Normalization((mean,) * channels, (std,) * channels)
        more = channels - 3
        means, stds = extra if extra is not None else ((0.0,) * more, (1.0,) * more)
        if len(means) != more or len(stds) != more:
            raise ValueError(f"{more} extra channel statistics needed")
        return Normalization(
            (*self.mean[:3], *map(float, means)), (*self.std[:3], *map(float, stds)), self.bgr
        )

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
        values: dict[str, tuple[float, ...]] = {}
        for key in ("mean", "std"):
            v = d.get(key)
            count = len(values["mean"]) if key == "std" else None  # one std per mean
            if not (
                isinstance(v, (list, tuple))
                and 1 <= len(v) <= MAX_CHANNELS
                and len(v) == (count or len(v))
                and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                    for x in v
                )
            ):
                raise CheckpointError(
                    f"{source}: normalization {key} must be one finite number per "
                    f"input channel, not {_short(v)}; save the model again with fcnseg"
                )
            values[key] = tuple(float(x) for x in v)
        if any(s == 0 for s in values["std"]):
            raise CheckpointError(
                f"{source}: normalization std has a zero; save the model again with fcnseg"
            )
        bgr = d.get("bgr", False)
        if not isinstance(bgr, bool) or bgr and len(values["mean"]) < 3:
            raise CheckpointError(
                f"{source}: normalization bgr must be true or false, and true only with "
                "three channels or more"
            )
        return cls(values["mean"], values["std"], bgr)


IMAGENET = Normalization((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
# The reference nets subtract the mean BGR pixel of ILSVRC and do not scale.
CAFFE_BGR = Normalization((104.00699, 116.66877, 122.67892), (1.0, 1.0, 1.0), bgr=True)
# Nets trained on inputs scaled to [-1, 1] (torchvision's GoogLeNet, EfficientNet-Lite).
SYMMETRIC = Normalization((127.5,) * 3, (127.5,) * 3)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
