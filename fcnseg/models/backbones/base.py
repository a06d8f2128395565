"""What a backbone is, and the registry that builds one by name (paper §4.1).

A backbone is a classification net laid out as one named sequence of layers with *taps*: the
layers whose outputs the skip architecture scores, keyed by their stride (8, 16, 32, and the
finer 4, 2 and 1 where the net has them).

A net whose first convolution strides has no layer at stride 1, but its first convolution
evaluated densely is one (§3.2: a strided layer is its dense output subsampled). There the
stride-1 tap is that *dense stem*: the first convolution at stride 1 and the pointwise layers
after it (normalisation, activation); the net goes on from its output subsampled, which is
exactly what the strided convolution would have computed.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
import torchvision
from torch import Tensor, nn

from ...blocks.geometry import IDENTITY, Field, GeometryError, layer_field, receptive_field
from ...errors import CheckpointError, ConfigError
from ..normalization import MAX_CHANNELS, Normalization
from ..registries import BACKBONES
from ..weights import read_state_dict

__all__ = [
    "BACKBONES",
    "Backbone",
    "Pretrained",
    "adapt_input",
    "build_backbone",
    "list_backbones",
]

Pretrained = bool | str | Path
GEOMETRIES = ("modern", "caffe")


class Backbone(nn.Sequential):
    """A classification net as a named sequence of layers with taps at strides 8, 16, 32 (and
    4, 2 and 1 where it has them: the last layer at that stride).

    ``forward`` returns ``{stride: features}`` for each tap (or each of ``strides``) and stops
    after the deepest one.
    ``field(stride)`` is the receptive field of a tap, composed layer by layer (§3.1).
    Without a stride-1 tap of its own, a net whose first layer is a strided convolution gets
    its dense stem as one (module docstring).
    """

    def __init__(
        self,
        layers: OrderedDict[str, nn.Module],
        *,
        taps: dict[int, str],
        normalization: Normalization,
    ) -> None:
        super().__init__(layers)
        self.taps = dict(sorted(taps.items()))
        # The stride of the first convolution where the stride-1 tap is its dense stem, else 1.
        self.dense_stride = 1
        if 1 not in self.taps:
            stem = self._dense_stem()
            if stem is not None:
                self.taps = {1: stem, **self.taps}
                self.dense_stride = _pair(self[0].stride)
        self.normalization = normalization
        self.channels, self.min_size = self._probe()

    def _dense_stem(self) -> str | None:
        """The last layer of the dense stem, if the first layer is a strided convolution that
        its dense output subsampled reproduces: a square odd kernel, centred by its padding.
        """
        first = self[0]
        if not isinstance(first, nn.Conv2d) or isinstance(first.padding, str):
            return None
        (k, k2), (s, s2) = first.kernel_size, first.stride
        if k != k2 or s != s2 or s == 1 or k % 2 == 0 or first.padding != ((k - 1) // 2,) * 2:
            return None
        if first.dilation != (1, 1):
            return None
        names = list(self._modules)
        last = names[0]
        for name in names[1:]:
            try:
                if layer_field(self._modules[name]) is not None:
                    break
            except (TypeError, GeometryError):  # a container or a layer acting on space
                break
            last = name
        return last

    @property
    def first_conv(self) -> nn.Conv2d:
        """The convolution that sees the image: the one :func:`adapt_input` widens."""
        return next(m for m in self.modules() if isinstance(m, nn.Conv2d))

    @property
    def in_channels(self) -> int:
        """Channels of the images the backbone takes."""
        return self.first_conv.in_channels

    def forward(self, x: Tensor, strides: tuple[int, ...] | None = None) -> dict[int, Tensor]:
        # Only the taps asked for are kept: a fine tap held to the end costs memory.
        wanted = {s: n for s, n in self.taps.items() if strides is None or s in strides}
        out: dict[int, Tensor] = {}
        segment: list[Callable[[Tensor], Tensor]] = []
        recompute = self.checkpointing and self.training and torch.is_grad_enabled()
        layers = list(self.named_children())
        if self.dense_stride > 1 and 1 in wanted:
            # The dense stem once, then its output subsampled for the rest of the net.
            end = [n for n, _ in layers].index(wanted[1]) + 1
            conv = self[0]
            segment = [
                lambda v: F.conv2d(v, conv.weight, conv.bias, 1, conv.padding, 1, conv.groups)
            ]
            segment += [layer for _, layer in layers[1:end]]
            out[1] = _run(segment, x, recompute)
            x, segment, layers = (
                out[1][..., :: self.dense_stride, :: self.dense_stride],
                [],
                layers[end:],
            )
            out.update({s: x for s, n in wanted.items() if s > 1 and n == wanted[1]})
        for name, layer in layers:
            if len(out) == len(wanted):
                break
            segment.append(layer)
            # Every tap ends a segment; checkpointed, a segment keeps only its input for the
            # backward pass and computes the rest again there.
            if name in wanted.values():
                x = _run(segment, x, recompute)
                segment = []
                out.update({s: x for s, n in wanted.items() if n == name})
        return out

    @property
    def checkpointing(self) -> bool:
        """Whether training recomputes each stage's activations in the backward pass instead
        of keeping them (activation checkpointing: less memory, one more forward's time)."""
        return getattr(self, "_checkpointing", False)

    @checkpointing.setter
    def checkpointing(self, on: bool) -> None:
        if on == self.checkpointing:
            return
        self._checkpointing = on
        # A recomputed stage updates batch-norm running statistics a second time, from the
        # same batch: momentum m' = 1 − √(1 − m) makes the two updates one of momentum m.
        for norm in self.modules():
            if isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm.momentum is not None:
                norm.momentum = (
                    1 - math.sqrt(1 - norm.momentum) if on else 1 - (1 - norm.momentum) ** 2
                )

    def field(self, stride: int) -> Field:
        """The tap's receptive field (unbounded past a squeeze-and-excitation gate). For ops
        without a field rule, the offset is taken as 0, the alignment of symmetric padding
        that PyTorch nets use."""
        f, layers = IDENTITY, list(self.named_children())
        if stride == 1 and self.dense_stride > 1:
            # The dense stem: the first convolution's window at stride 1.
            conv, layers = self[0], layers[1:]
            f = Field(size=_pair(conv.kernel_size), stride=1, offset=0)
        for name, layer in layers:
            try:
                f = receptive_field(layer, f)
            except GeometryError as exc:
                warnings.warn(
                    f"receptive field of the stride-{stride} tap unknown ({exc}); "
                    "assuming top-left alignment",
                    stacklevel=2,
                )
                return Field(size=math.inf, stride=stride, offset=0.0)
            if name == self.taps[stride]:
                return f
        raise KeyError(stride)

    @torch.no_grad()
    def _probe(self) -> tuple[dict[int, int], int]:
        """Tap channels, and the smallest input (a multiple of the output stride) it accepts."""
        was_training, stride = self.training, max(self.taps)
        self.eval()
        try:
            for size in range(stride, 8 * stride + 1, stride):
                try:
                    feats = self(torch.zeros(1, self.in_channels, size, size))
                except RuntimeError:
                    continue  # too small for some layer's kernel
                return {s: f.shape[1] for s, f in feats.items()}, size
            raise ValueError("the backbone accepts no input up to 8× its output stride")
        finally:
            self.train(was_training)


def _pair(value: int | tuple[int, ...]) -> int:
    return value[0] if isinstance(value, tuple) else value


def _run(layers: list[Callable[[Tensor], Tensor]], x: Tensor, recompute: bool) -> Tensor:
    """``layers`` in turn, checkpointed as one segment if ``recompute``."""

    def segment(value: Tensor) -> Tensor:
        for layer in layers:
            value = layer(value)
        return value

    if recompute:
        return torch.utils.checkpoint.checkpoint(segment, x, use_reentrant=False)
    return segment(x)


def build_backbone(
    name: str, *, geometry: str = "modern", pretrained: Pretrained = False, in_channels: int = 3
) -> Backbone:
    """A backbone by name: one of :func:`list_backbones` or ``"timm:<model name>"``, taking
    images of ``in_channels`` channels (:func:`adapt_input`)."""
    if geometry not in GEOMETRIES:
        raise ConfigError(f"geometry must be 'modern' or 'caffe', not {geometry!r}")
    if name == "timm":
        raise ConfigError("backbone 'timm' needs a model name: 'timm:<model name>'")
    if name.startswith("timm:"):
        net = BACKBONES["timm"](name[5:], geometry=geometry, pretrained=pretrained)
    else:
        net = BACKBONES[name](geometry=geometry, pretrained=pretrained)
    return adapt_input(net, in_channels)


def adapt_input(backbone: Backbone, in_channels: int) -> Backbone:
    """Widen (or narrow) the first convolution to ``in_channels`` input channels, in place.

    The ImageNet filters are kept where they apply, as timm does for ``in_chans``
    (``adapt_input_conv``): repeated over the new channels and scaled by 3/``in_channels``
    so the first layer's response keeps its size; a grey image sums them. This is how the
    paper's RGB-D net is initialised from an RGB one (§5, NYUDv2 early fusion).
    """
    from timm.models import adapt_input_conv

    if isinstance(in_channels, bool) or not isinstance(in_channels, int):
        raise ConfigError(f"in_channels must be a whole number, not {in_channels!r}")
    if not 1 <= in_channels <= MAX_CHANNELS:
        raise ConfigError(f"in_channels must be in 1–{MAX_CHANNELS}, not {in_channels}")
    conv = backbone.first_conv
    if in_channels == conv.in_channels:
        return backbone
    weight = adapt_input_conv(in_channels, conv.weight.detach(), base_chans=conv.in_channels)
    conv.weight = nn.Parameter(weight.contiguous())
    conv.in_channels = in_channels
    backbone.normalization = backbone.normalization.for_channels(in_channels)
    return backbone


def list_backbones() -> list[str]:
    """The backbone names :func:`build_backbone` knows (``timm`` takes ``timm:<name>``)."""
    return BACKBONES.names()


def modern_only(name: str, geometry: str) -> None:
    """Refuse the reference geometry for a net the reference never had."""
    if geometry != "modern":
        raise ConfigError(
            f"geometry={geometry!r} is defined for the reference nets vgg16 and "
            f"alexnet; use geometry='modern' with {name}"
        )


# ---------------------------------------------------------------- torchvision weights


def _torchvision_state(name: str, pretrained: Pretrained) -> dict[str, Tensor] | None:
    if pretrained is False:
        return None
    if pretrained is True:  # torchvision's own mechanism: downloads once into its cache
        # torch.hub loads with weights_only=False unless told: never run a downloaded pickle.
        weights = torchvision.models.get_model_weights(name).DEFAULT
        return weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    return read_state_dict(pretrained)


def load_strict(model: nn.Module, state: dict[str, Tensor], what: str, source: Pretrained) -> None:
    """Load ``state`` into ``model`` exactly, or say which tensor does not fit."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    shaped = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or extra or shaped:
        detail = (
            f"missing {missing[:3]}"
            if missing
            else f"unexpected {extra[:3]}"
            if extra
            else f"{shaped[0]} is {tuple(state[shaped[0]].shape)}, "
            f"expected {tuple(own[shaped[0]].shape)}"
        )
        raise CheckpointError(
            f"{source}: not {what} weights ({detail}); pass a weight file made for {what}"
        )
    model.load_state_dict(state)


def torchvision_net(name: str, pretrained: Pretrained, **kwargs: object) -> nn.Module:
    """torchvision's classifier ``name``, with ImageNet weights or a weight file's."""
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    state = _torchvision_state(name, pretrained)
    if state is not None:
        load_strict(model, state, f"torchvision {name}", pretrained)
    return model
