"""Network preparation for inference: the same function, computed with less work.

:func:`prepare_network` makes a copy of an FCN for fast inference without changing its answer
beyond rounding: batch normalisation folded into the convolutions, ``channels_last`` layout
(oneDNN's native layout on CPU, tensor cores' on GPU), the backbone in bf16 or fp16 when asked
(the scoring layers, skips and upsampling stay in fp32), and the final fixed bilinear
upsampling (§3.3) and crop replaced by :class:`Upsampling`: two small matrices, one per axis,
applied only for the rows and columns wanted.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor, nn

from ..blocks.upsampling import FixedUpsample
from ..models import FCN, Backbone, Crop

__all__ = ["DTYPES", "CoarseScores", "Upsampling", "fold_batchnorm", "prepare_network"]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def fold_batchnorm(net: Backbone) -> int:
    """Fold every batch normalisation that directly follows a convolution into it, in place.

    Inference-time batch normalisation is an affine map per channel, so it can live in the
    convolution's weights and bias and save a full pass over the feature map. Pairs are found
    by running the net once on a random input and matching each normalisation's input to a
    convolution's output; the net's outputs on that input are checked after folding, and the
    folding is undone if they changed. Returns the number of layers folded.
    """
    produced: dict[int, nn.Conv2d] = {}
    pairs: list[tuple[nn.Conv2d, str, nn.BatchNorm2d]] = []
    names = {m: n for n, m in net.named_modules()}

    def after_conv(conv: nn.Module, _inputs: tuple, out: Tensor) -> None:
        produced[id(out)] = conv

    def before_norm(norm: nn.Module, inputs: tuple) -> None:
        conv = produced.get(id(inputs[0]))
        if conv is not None and not norm.training and _after_norm(norm) is not None:
            pairs.append((conv, names[norm], norm))

    hooks = [
        m.register_forward_hook(after_conv)
        for m in net.modules()
        if isinstance(m, nn.Conv2d) and not isinstance(m, nn.ConvTranspose2d)
    ]
    hooks += [
        m.register_forward_pre_hook(before_norm)
        for m in net.modules()
        if isinstance(m, nn.BatchNorm2d) and m.track_running_stats
    ]
    probe = torch.randn(
        1, net.in_channels, net.min_size, net.min_size, generator=torch.Generator().manual_seed(0)
    )
    # A dense stem (stride-1 tap of a strided first convolution) calls that convolution as a
    # function, out of the hooks' sight; the strided taps run every layer as a module, and
    # the stem reads the folded weights all the same.
    strided = tuple(s for s in net.taps if s > 1)
    try:
        with torch.no_grad():
            before = net(probe, strided)
    finally:
        for h in hooks:
            h.remove()
    undo = []
    with torch.no_grad():
        for conv, name, norm in pairs:
            undo.append((conv, conv.weight.clone(), conv.bias, name, norm))
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            conv.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias)
            _replace(net, name, _after_norm(norm))
        after = net(probe, strided) if pairs else before
        if all(
            torch.allclose(after[s], before[s], rtol=1e-3, atol=1e-4 * before[s].abs().max().item())
            for s in before
        ):
            return len(pairs)
        for conv, weight, bias, name, norm in undo:  # a pattern the matching got wrong
            conv.weight.copy_(weight)
            conv.bias = bias
            _replace(net, name, norm)
    return 0


def _replace(net: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, attr, module)


def _after_norm(norm: nn.BatchNorm2d) -> nn.Module | None:
    """What remains of a normalisation layer once its affine map is folded away: nothing for
    PyTorch's own, dropout and activation for timm's fused norm-act layers; ``None`` for a
    subclass of unknown behaviour (left alone)."""
    if type(norm) is nn.BatchNorm2d:
        return nn.Identity()
    if hasattr(norm, "act") and hasattr(norm, "drop") and norm.affine:
        return nn.Sequential(norm.drop, norm.act)
    return None


class _LowPrecision(nn.Module):
    """The backbone in bf16 or fp16; its taps come back in fp32, so that the scoring layers,
    the skip sums and the upsampling (a few percent of the work) keep full precision."""

    def __init__(self, backbone: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.net = backbone.to(dtype)
        self.dtype, self.min_size = dtype, backbone.min_size

    def forward(self, x: Tensor, strides: tuple[int, ...] | None = None) -> dict[int, Tensor]:
        return {s: f.float() for s, f in self.net(x.to(self.dtype), strides).items()}


class CoarseScores(nn.Module):
    """Stands in for the final crop so that the FCN returns its coarse scores; the
    :class:`Upsampling` then does the upsampling and crop, only where it is needed."""

    def forward(self, x: Tensor, height: int, width: int) -> Tensor:
        return x


@dataclass(frozen=True)
class Upsampling:
    """The FCN's final fixed bilinear upsampling and crop as one matrix per axis.

    The reference ``upscore`` is a transposed convolution whose kernel is the outer product of a
    1-D ramp with itself (§3.3), followed by the ``score`` crop. Both are linear and separable,
    so the scores at full resolution are ``A · S · Bᵀ`` for coarse scores ``S``, with ``A`` and
    ``B`` built from the layer's own kernel, stride, padding and crop. Any band of rows or
    columns costs only its share, which is what tiling and the band-wise argmax need.
    """

    ramp: tuple[float, ...]
    factor: int
    padding: int
    offset: int

    @classmethod
    def of(cls, model: FCN) -> Upsampling | None:
        """The model's final upsampling, or ``None`` if it is not a separable fixed one."""
        if model.final is None:  # FCN-1s: scores at full resolution already
            return None
        # Every head has the same final upsampling and crop: the first stands for all.
        final = getattr(model, model.final + model.suffixes[0])
        crop = getattr(model, "score" + model.suffixes[0])
        if not isinstance(final, FixedUpsample) or not isinstance(crop, Crop):
            return None
        kernel = final.weight.detach().double().cpu()
        ramp = kernel[0, 0].sum(1) / kernel[0, 0].sum().sqrt()
        if not torch.allclose(kernel, torch.outer(ramp, ramp).expand_as(kernel), atol=1e-6):
            return None
        return cls(tuple(ramp.tolist()), final.factor, final.padding, crop.offset)

    def matrix(self, coarse: int, start: int, stop: int, device: torch.device) -> Tensor:
        """Rows ``start:stop`` of the output (in input pixels) from ``coarse`` positions."""
        return _matrix(self, coarse, start, stop, str(device))

    def __call__(self, scores: Tensor, rows: tuple[int, int], cols: tuple[int, int]) -> Tensor:
        """Full-resolution scores N×C×rows×cols of the coarse ``scores`` N×C×h×w."""
        a = self.matrix(scores.shape[-2], *rows, scores.device)
        b = self.matrix(scores.shape[-1], *cols, scores.device)
        return a @ (scores @ b.T)


@lru_cache(maxsize=64)
def _matrix(up: Upsampling, coarse: int, start: int, stop: int, device: str) -> Tensor:
    kernel = len(up.ramp)
    length = (coarse - 1) * up.factor + kernel - 2 * up.padding  # the transposed conv's output
    # The crop takes positions offset…; past the end it repeats the last one (Crop's fill).
    y = (torch.arange(start, stop) + up.offset).clamp(max=length - 1)
    tap = y[:, None] + up.padding - torch.arange(coarse)[None, :] * up.factor
    ramp = torch.tensor(up.ramp, dtype=torch.float32)
    inside = (tap >= 0) & (tap < kernel)
    return torch.where(inside, ramp[tap.clamp(0, kernel - 1)], 0.0).to(device)


def prepare_network(
    model: FCN, *, precision: str, device: torch.device, compile: bool = False
) -> tuple[nn.Module, Upsampling | None]:
    """A copy of ``model`` made for speed at ``precision`` on ``device``, and the
    :class:`Upsampling` that completes its coarse scores (``None``: the copy returns
    full-resolution scores itself). ``model`` is left untouched."""
    net = copy.deepcopy(model).eval()
    fold_batchnorm(net.backbone)
    up = Upsampling.of(net)
    if up is not None:  # the model returns coarse scores; the Upsampling does the rest
        for suffix in net.suffixes:
            setattr(net, net.final + suffix, nn.Identity())
            setattr(net, "score" + suffix, CoarseScores())
    if precision != "fp32":
        net.backbone = _LowPrecision(net.backbone, DTYPES[precision])
    net = net.to(device, memory_format=torch.channels_last)
    if compile:
        net = torch.compile(net, dynamic=False)
    return net, up
