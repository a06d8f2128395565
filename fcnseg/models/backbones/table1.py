"""The nets of the paper's Table 1, convolutionalized (§3.1, §4.1): VGG16, AlexNet, GoogLeNet.

VGG16 and AlexNet get the reference layer names (``conv1_1``… ``fc7``) and, with
``geometry="caffe"``, the reference nets' exact geometry: conv1_1 padded by 100, ceil-mode
pooling, a 7×7 valid fc6.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ...blocks.convolutionalization import convolutionalize
from ..normalization import CAFFE_BGR, IMAGENET, SYMMETRIC
from .base import BACKBONES, Backbone, Pretrained, modern_only, torchvision_net

__all__ = ["alexnet", "googlenet", "vgg16"]


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


def _fc_layers(head: list[nn.Module]) -> list[nn.Module]:
    """fc6, relu6, drop6, fc7, relu7, drop7 from a convolutionalized classifier (AlexNet puts
    dropout before each fc, VGG after); the last fc, the 1000-way classifier, is dropped."""
    convs = [m for m in head if isinstance(m, nn.Conv2d)]
    drops = [m for m in head if isinstance(m, nn.Dropout)]
    relus = [m for m in head if isinstance(m, nn.ReLU)]
    return [convs[0], relus[0], drops[0], convs[1], relus[1], drops[1]]


def _convolutionalized(
    name: str, *, geometry: str, pretrained: Pretrained, blocks: bool
) -> Backbone:
    net = convolutionalize(torchvision_net(name, pretrained))
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
    # The taps are the pools that reach each stride (VGG's pool1…pool4 at 2…16, and relu1_2,
    # the last layer before pool1, at 1); AlexNet's first convolution strides by 4 at once, so
    # its stride-4 tap is relu1 and it has no 2 or 1.
    if blocks:
        taps = {1: "relu1_2", 2: pools[0], 4: pools[1], 8: pools[2], 16: pools[3], 32: "drop7"}
    else:
        taps = {4: "relu1", 8: pools[0], 16: pools[1], 32: "drop7"}
    norm = CAFFE_BGR if geometry == "caffe" and pretrained is False else IMAGENET
    return Backbone(layers, taps=taps, normalization=norm)


@BACKBONES.register("vgg16")
def vgg16(*, geometry: str = "modern", pretrained: Pretrained = False) -> Backbone:
    """VGG16, the paper's main net (Table 1), with reference layer names."""
    return _convolutionalized("vgg16", geometry=geometry, pretrained=pretrained, blocks=True)


@BACKBONES.register("alexnet")
def alexnet(*, geometry: str = "modern", pretrained: Pretrained = False) -> Backbone:
    """AlexNet (Table 1), torchvision's definition, with reference layer names."""
    return _convolutionalized("alexnet", geometry=geometry, pretrained=pretrained, blocks=False)


@BACKBONES.register("googlenet")
def googlenet(*, geometry: str = "modern", pretrained: Pretrained = False) -> Backbone:
    """GoogLeNet (Table 1): as in the paper, only the final classifier is used, and the final
    average pooling is discarded; the taps are the ends of inception 3, 4 and 5 (and of the
    stem's stride-2 and stride-4 convolutions)."""
    modern_only("googlenet", geometry)
    net = torchvision_net("googlenet", pretrained, aux_logits=True, init_weights=False)
    names = [
        "conv1",
        "maxpool1",
        "conv2",
        "conv3",
        "maxpool2",
        "inception3a",
        "inception3b",
        "maxpool3",
        "inception4a",
        "inception4b",
        "inception4c",
        "inception4d",
        "inception4e",
        "maxpool4",
        "inception5a",
        "inception5b",
    ]
    layers = OrderedDict((n, getattr(net, n)) for n in names)
    # torchvision's GoogLeNet weights expect inputs scaled to [-1, 1] (its transform_input).
    return Backbone(
        layers,
        taps={2: "conv1", 4: "conv3", 8: "inception3b", 16: "inception4e", 32: "inception5b"},
        normalization=SYMMETRIC,
    )
