"""In-network upsampling by backwards strided convolution (paper §3.3).

Upsampling by a factor ``f`` is convolution with fractional input stride ``1/f``: a transposed
convolution. Initialised to bilinear interpolation it starts as a sensible upsampler, and being
a layer it can be learned end to end. The reference nets learn the 2× steps of the skip
architecture and keep the final upsampling fixed to bilinear; fcnseg does the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .geometry import Field, transposed_field

__all__ = ["FixedUpsample", "bilinear_kernel", "learned_upsample"]


def bilinear_kernel(size: int) -> Tensor:
    """The ``size``×``size`` kernel of bilinear interpolation by ``(size + 1) // 2``.

    An even ``size = 2f`` upsamples by ``f`` between pixel centres (``align_corners=False``); an
    odd ``size = 2f - 1`` puts input samples on output samples (``align_corners=True``).
    """
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(size, dtype=torch.float64) - centre).abs() / factor
    return torch.outer(ramp, ramp).float()


def learned_upsample(
    channels: int, *, factor: int = 2, kernel: int | None = None, padding: int = 0
) -> nn.ConvTranspose2d:
    """A learnable per-class upsampler, as the reference ``upscore2``: a full ``C×C×k×k``
    transposed convolution without bias, initialised to bilinear on the diagonal (each class
    upsampled on its own) and zero elsewhere."""
    kernel = kernel or 2 * factor
    layer = nn.ConvTranspose2d(
        channels, channels, kernel, stride=factor, padding=padding, bias=False
    )
    with torch.no_grad():
        layer.weight.zero_()
        idx = torch.arange(channels)
        layer.weight[idx, idx] = bilinear_kernel(kernel)
    return layer


class FixedUpsample(nn.Module):
    """Fixed bilinear upsampling of every channel by ``factor`` (the reference ``upscore8``).

    The kernel is a buffer, not a parameter: it is saved and loaded with the model but never
    trained. Each class is upsampled on its own (a depthwise transposed convolution), which is
    what the reference's diagonal ``C×C×k×k`` kernel computes, at ``1/C`` of the cost.
    """

    def __init__(
        self, channels: int, *, factor: int, kernel: int | None = None, padding: int = 0
    ) -> None:
        super().__init__()
        self.factor, self.padding = factor, padding
        kernel = kernel or 2 * factor
        self.register_buffer("weight", bilinear_kernel(kernel).expand(channels, 1, -1, -1).clone())

    @property
    def field(self) -> Field:
        return transposed_field(self.weight.shape[-1], self.factor, self.padding)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv_transpose2d(
            x, self.weight.to(x.dtype), stride=self.factor, padding=self.padding, groups=x.shape[1]
        )
