"""The skip architecture: FCN-32s, FCN-16s and FCN-8s (paper §4.2, Figure 3), and past the
paper, FCN-4s, FCN-2s and FCN-1s.

One class builds them all. Its only input beyond the backbone is the list of *taps* to fuse:
none for FCN-32s, the stride-16 pool for FCN-16s, the stride-16 and stride-8 pools for FCN-8s,
and on to the stride-4, -2 and -1 taps (``pool2``, ``pool1``, ``pool0``) where the backbone has
them (the stride-1 one is VGG's ``relu1_2``, or the dense stem of a net whose first convolution
strides: :mod:`.backbones.base`).
Starting from the 1×1 class scores on the deepest layer (``score_fr``), each tap adds a step:
upsample the running scores 2× (``upscore2``, then ``upscore_pool4``…), score the tap with a
1×1 convolution (``score_pool4``…), crop it to lie over the upsampled scores, and sum
(``fuse_pool4``…). A final fixed bilinear upsampling (``upscore``, ``upscore16``, ``upscore8``;
none after the stride-1 tap) and crop return scores at exactly the input's size.

The crops and upsampling paddings are computed from the layers' receptive fields
(:mod:`fcnseg.blocks.geometry`), never written down: for the reference (``geometry="caffe"``) VGG16
nets they come out as the prototxts' 5, 9 and 31; for ``geometry="modern"`` the paddings are
chosen so that every map lines up at offset 0, and the 100-pixel pad is not needed.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..blocks.geometry import IDENTITY, Field, crop_offset, layer_field
from ..blocks.upsampling import FixedUpsample, learned_upsample
from ..errors import ConfigError
from .backbones import Backbone
from .meta import ModelMeta
from .normalization import Normalization
from .tta import viewed_scores

__all__ = ["FCN", "HeadView", "output_field", "pad_to_stride"]

# PAMI §4.3, "all at once": the pool4 and pool3 taps are scaled down before scoring so that
# the deep scores dominate at the start, as staged training would have them. The finer taps
# continue the paper's factor of 100 per level (an extrapolation: the paper stops at pool3).
AT_ONCE_SCALE = {16: 1e-2, 8: 1e-4, 4: 1e-6, 2: 1e-8, 1: 1e-10}


def tap_name(stride: int) -> str:
    """Reference name of the tap at ``stride``: 16 → ``pool4``, 8 → ``pool3``, 1 → ``pool0``."""
    return f"pool{int(math.log2(stride))}"


class Fuse(nn.Module):
    """Crop the tap's scores by ``offset`` positions to lie over the upsampled scores, and sum.

    Where the two maps differ in size past the aligned origin (modern geometry on odd sizes),
    both are cut to their overlap.
    """

    def __init__(self, offset: int) -> None:
        super().__init__()
        self.offset = offset

    def forward(self, up: Tensor, skip: Tensor) -> Tensor:
        c = self.offset
        h = min(up.shape[-2], skip.shape[-2] - c)
        w = min(up.shape[-1], skip.shape[-1] - c)
        return up[..., :h, :w] + skip[..., c : c + h, c : c + w]


class Crop(nn.Module):
    """Cut the output to the input's size at ``offset`` (Caffe's final crop layer, ``score``).

    With :func:`extended`, every registered backbone covers the input; a backbone of one's own
    whose pooling rounds odd sizes down can still fall a row or column short, and those are
    filled from their neighbours rather than left out.
    """

    def __init__(self, offset: int) -> None:
        super().__init__()
        self.offset = offset

    def forward(self, x: Tensor, height: int, width: int) -> Tensor:
        c = self.offset
        x = x[..., c : c + height, c : c + width]
        if x.shape[-2] < height or x.shape[-1] < width:
            # Replicated by index rather than F.pad(mode="replicate"), whose backward Inductor
            # miscompiles for channels-last tensors (torch 2.14: a stride assertion fails).
            # One branch for both sides, so that the ONNX export keeps both sizes dynamic.
            for dim, size in ((-2, height), (-1, width)):
                index = torch.arange(size, device=x.device).clamp(max=x.shape[dim] - 1)
                x = x.index_select(dim, index)
        return x


def extended(x: Tensor) -> Tensor:
    """``x`` with its last row and column repeated once.

    A 2× upsampling whose kernel puts coarse positions on fine ones (odd kernel, modern
    geometry) makes ``2n − 1`` positions of ``n``: the fine map's last position lies half a
    coarse step past the last coarse one, and each fusion and the final upsampling would lose
    it again (31 rows and columns for FCN-8s). One repeated coarse position lets the upsampling
    interpolate there towards the edge value; :class:`Fuse` and :class:`Crop` cut the rest.
    """
    x = torch.cat([x, x[..., -1:, :]], dim=-2)
    return torch.cat([x, x[..., -1:]], dim=-1)


def _upsampling(coarse: Field, target: Field, factor: int, geometry: str) -> tuple[int, int]:
    """Kernel and padding of a ×``factor`` upsampling from ``coarse`` onto ``target``.

    A transposed convolution moves the offset by ``stride·(padding − (kernel − 1)/2)`` (§3.1
    applied to §3.3), so the kernel's parity decides whether the upsampled positions can lie on
    ``target``'s: ``2·factor`` where the coarse map sits half a position off them, ``2·factor −
    1`` where it sits on them. The reference nets pad nothing and crop afterwards (which is why
    FCN-AlexNet's final upsampling is 63 wide where the VGG16 nets' are 64); the modern
    geometry picks the padding that puts the first positions together.
    """
    shift = (target.offset - coarse.offset) / target.stride
    half_position = abs(shift % 1 - 0.5) < 0.25
    kernel = 2 * factor if half_position else 2 * factor - 1
    if geometry == "caffe":
        return kernel, 0
    padding = max(0, round(shift + (kernel - 1) / 2))
    return kernel, padding


def _offset(field: Field, reference: Field) -> int:
    c = crop_offset(field, reference)
    if c < -1e-6 or abs(c - round(c)) > 0.26:
        raise ConfigError(
            f"cannot align the maps of this backbone and variant (a crop of {c} positions); "
            "use geometry='modern', or a coarser variant"
        )
    return round(c)


def pad_to_stride(x: Tensor, stride: int, min_size: int = 0) -> Tensor:
    """Pad ``x`` at the bottom and right to whole multiples of ``stride`` (and to at least
    ``min_size``) with zeros, the mean colour after normalisation: the pad adds no signal.

    ``(-n) mod stride`` holds for every size, also as a symbolic shape in an exported graph.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % stride, (-width) % stride
    if min_size:
        pad_h, pad_w = max(pad_h, min_size - height), max(pad_w, min_size - width)
    return F.pad(x, (0, pad_w, 0, pad_h))


class FCN(nn.Module):
    """A fully convolutional network: backbone, 1×1 scoring and the skip architecture.

    Args:
        backbone: the convolutionalized classification net with its taps.
        num_classes: number of classes scored; or, for a net with several heads (the paper's
            SIFT Flow net scores semantic and geometric classes from one backbone), each
            head's name and class count, ``{"sem": 33, "geo": 3}``. Each head is a score path
            of its own, its layers named with the head's suffix (``score_fr_sem``…), and the
            output holds the heads' scores one after the other.
        skips: strides of the taps fused, coarse to fine: ``()`` FCN-32s, ``(16,)`` FCN-16s,
            ``(16, 8)`` FCN-8s, ``(16, 8, 4)`` FCN-4s, ``(16, 8, 4, 2)`` FCN-2s,
            ``(16, 8, 4, 2, 1)`` FCN-1s.
        geometry: ``"caffe"`` (the reference nets) or ``"modern"``.
        at_once: scale the taps as the PAMI all-at-once nets do.
        meta: what a model file needs to rebuild the model and name its classes (by default
            the variant named by the skips, on a backbone called ``custom``).
    """

    def __init__(
        self,
        backbone: Backbone,
        *,
        num_classes: int | Mapping[str, int],
        skips: Sequence[int],
        geometry: str,
        at_once: bool = False,
        meta: ModelMeta | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        heads = dict(num_classes) if isinstance(num_classes, Mapping) else {"": num_classes}
        self.num_classes, self.geometry = sum(heads.values()), geometry
        self.skips = tuple(skips)
        missing = [s for s in self.skips if s not in backbone.taps]
        if missing:
            raise ConfigError(
                f"this backbone has no stride-{missing[0]} tap (its taps: "
                f"{', '.join(map(str, backbone.taps))}); choose a coarser variant, e.g. "
                f"fcn{2 * missing[0]}s, or a backbone with that stride"
            )
        self.skip_scale = {s: AT_ONCE_SCALE.get(s, 1.0) if at_once else 1.0 for s in self.skips}
        self.meta = meta or ModelMeta(
            variant=f"fcn{min(self.skips, default=32)}s",
            backbone="custom",
            geometry=geometry,
            num_classes=self.num_classes,
            normalization=backbone.normalization,
            at_once=at_once,
            heads=None if "" in heads else tuple(heads.items()),
        )
        # Layer-name suffixes, one per head: "" for a net of one head, "_sem"… otherwise.
        self.suffixes = [f"_{name}" if name else "" for name in heads]
        for suffix, count in zip(self.suffixes, heads.values(), strict=True):
            self._score_path(suffix, count)
        # Without the 100-pixel pad, inputs are padded to whole output strides instead.
        self.pad_to = 1 if geometry == "caffe" else max(backbone.taps)

    def _score_path(self, suffix: str, num_classes: int) -> None:
        """One head's layers: ``score_fr``, and per tap ``upscore``, ``score_pool`` and
        ``fuse_pool``, then the final upsampling and crop, each name ending in ``suffix``."""
        backbone, geometry = self.backbone, self.geometry
        self.add_module(f"score_fr{suffix}", self._score(backbone.channels[32], num_classes))
        stride, field = 32, backbone.field(32)  # the 1×1 scores keep the deepest tap's field
        self.upscores: list[str] = []  # base names, the same for every head
        for i, s in enumerate(self.skips):
            name = "upscore2" if i == 0 else f"upscore_{tap_name(stride)}"
            tap = backbone.field(s)
            kernel, padding = _upsampling(field, tap, stride // s, geometry)
            layer = learned_upsample(
                num_classes, factor=stride // s, kernel=kernel, padding=padding
            )
            self.add_module(name + suffix, layer)
            field = field.then(layer_field(layer))
            self.add_module(
                f"score_{tap_name(s)}{suffix}", self._score(backbone.channels[s], num_classes)
            )
            self.add_module(f"fuse_{tap_name(s)}{suffix}", Fuse(_offset(tap, field)))
            self.upscores.append(name)
            stride = s
        # Named by its factor as the reference's upscore8, except where that name is the first
        # learned 2× upsampling's: FCN-2s's final upsampling follows fuse_pool1. FCN-1s's
        # scores are at the input's stride already: only the crop is left.
        self.final = (
            "upscore"
            if not self.skips
            else "upscore_pool1"
            if stride == 2
            else f"upscore{stride}"
            if stride > 1
            else None
        )
        if self.final is not None:
            kernel, padding = _upsampling(field, IDENTITY, stride, geometry)
            final = FixedUpsample(num_classes, factor=stride, kernel=kernel, padding=padding)
            self.add_module(self.final + suffix, final)
            field = field.then(final.field)
        self.add_module(f"score{suffix}", Crop(_offset(field, IDENTITY)))

    @property
    def normalization(self) -> Normalization:
        """The input normalisation the weights expect (kept in :attr:`meta`)."""
        return self.meta.normalization

    @normalization.setter
    def normalization(self, value: Normalization) -> None:
        self.meta = dataclasses.replace(self.meta, normalization=value)

    @staticmethod
    def _score(channels: int, num_classes: int) -> nn.Conv2d:
        # Zero-initialised (§4.2): a new score layer starts by adding nothing, so adding a skip
        # to a trained coarser net leaves its output unchanged at first.
        layer = nn.Conv2d(channels, num_classes, 1)
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
        return layer

    @property
    def crops(self) -> dict[str, int]:
        """Crop offsets by layer name, computed from the geometry (``fuse_pool4``…, ``score``).
        Every head has the same geometry: these are the first head's."""
        suffix = self.suffixes[0]
        out = {
            f"fuse_{tap_name(s)}": getattr(self, f"fuse_{tap_name(s)}{suffix}").offset
            for s in self.skips
        }
        out["score"] = getattr(self, f"score{suffix}").offset
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Scores N×num_classes×H×W for a normalised batch N×C×H×W (C = ``meta.in_channels``),
        for any H, W ≥ 1; with several heads, theirs one after the other."""
        height, width = x.shape[-2:]
        if self.pad_to > 1:
            x = pad_to_stride(x, self.pad_to, self.backbone.min_size)
        feats = self.backbone(x, (32, *self.skips))
        outs = [self._head(feats, suffix, height, width) for suffix in self.suffixes]
        return outs[0] if len(outs) == 1 else torch.cat(outs, 1)

    def _head(self, feats: dict[int, Tensor], suffix: str, height: int, width: int) -> Tensor:
        # The reference nets' 100-pixel pad leaves every map room to spare; the modern
        # geometry extends each map by a position before upsampling it (see extended).
        edge = extended if self.geometry == "modern" else (lambda x: x)
        scores = getattr(self, f"score_fr{suffix}")(feats[32])
        for s, up in zip(self.skips, self.upscores, strict=True):
            name = tap_name(s)
            tap = feats[s] if self.skip_scale[s] == 1.0 else feats[s] * self.skip_scale[s]
            scores = getattr(self, f"fuse_{name}{suffix}")(
                getattr(self, up + suffix)(edge(scores)),
                getattr(self, f"score_{name}{suffix}")(tap),
            )
        if self.final is not None:
            scores = getattr(self, self.final + suffix)(edge(scores))
        return getattr(self, f"score{suffix}")(scores, height, width)

    def head(self, name: str) -> HeadView:
        """Head ``name`` of a net of several heads, as a model of its own (sharing weights)."""
        return HeadView(self, name)

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """Class indices N×H×W for a batch N×C×H×W in the pixels' units (uint8 0–255 RGB);
        N×heads×H×W for a net of several heads; at the model's working scale, if it has one."""
        parts = [part for _, part in self.meta.head_slices()]
        x = self.normalization(images)
        scores = viewed_scores(self, x, tta=None, magnify=self.meta.magnify, parts=parts)
        labels = [scores[:, part].argmax(1) for part in parts]
        return labels[0] if len(labels) == 1 else torch.stack(labels, 1)


class HeadView(nn.Module):
    """One head of a net of several heads: the net's scores for that head's classes only,
    with that head's metadata, so that scoring code written for one head serves each."""

    def __init__(self, model: FCN, name: str) -> None:
        super().__init__()
        parts = dict(model.meta.head_slices())
        if name not in parts:
            raise KeyError(f"no head {name!r}; the heads are {', '.join(parts)}")
        self.model, self.name, self.part = model, name, parts[name]

    @property
    def meta(self) -> ModelMeta:
        return self.model.meta.head(self.name)

    @property
    def normalization(self) -> Normalization:
        return self.model.normalization

    @property
    def num_classes(self) -> int:
        return self.part.stop - self.part.start

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)[:, self.part]


def output_field(model: FCN) -> float:
    """Receptive field of one output pixel, in pixels (§3.1): the deepest tap's field carried
    through the skip upsamplings and the final upsampling. Infinite for nets with global
    context (squeeze-excite)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an unknown field is reported as infinite
        field = model.backbone.field(32)
    suffix = model.suffixes[0]
    for name in model.upscores:
        field = field.then(layer_field(getattr(model, name + suffix)))
    if model.final is not None:
        field = field.then(getattr(model, model.final + suffix).field)
    return field.size
