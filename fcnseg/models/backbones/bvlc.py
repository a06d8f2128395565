"""The paper's Caffe nets as the authors had them: BVLC's GoogLeNet (Szegedy et al. 2015), the
third net of Table 1, and CaffeNet, the AlexNet of the authors' FCN-AlexNet.

torchvision's ``googlenet`` (kept under that name) follows a later variant: 3×3 convolutions
where the paper's inception modules have 5×5, batch normalisation, no LRN. Its receptive field
at stride 32 is therefore 379 pixels; the net the paper convolutionalized has 5×5 branches and
local response normalisation, and a receptive field of 907 pixels (Table 1, counting the final
7×7 average pooling that §4.1 then discards). This module builds that net, its layers named as
BVLC's prototxt names them with ``.`` for ``/`` (``inception_3a.5x5_reduce``…), so that the
weights of ``bvlc_googlenet.caffemodel`` import by name (``fcnseg import-caffe``).

The fully connected classifier (``loss3/classifier``) and the two auxiliary classifiers are not
part of the backbone: as §4.1 does, the FCN scores the last inception module with its own 1×1
layer, and drops the final average pooling.

CaffeNet is AlexNet as BVLC trained it in Caffe (``bvlc_reference_caffenet``): 96 filters in
conv1, two groups in conv2, conv4 and conv5 (the two GPUs of the original), local response
normalisation after the first two poolings. torchvision's ``alexnet`` is a later single-GPU
variant (64 filters, no groups, no LRN) whose weights do not fit the authors' FCN-AlexNet.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError
from ..normalization import CAFFE_BGR, Normalization
from ..weights import read_state_dict
from .base import BACKBONES, Backbone, Pretrained, load_strict, modern_only

__all__ = ["BVLC_MEAN", "CLASSIFIER_POOL", "Inception", "bvlc_googlenet", "caffenet"]

# BVLC's GoogLeNet was trained on BGR images less this mean (its deploy transform).
BVLC_MEAN = Normalization((104.0, 117.0, 123.0), (1.0, 1.0, 1.0), bgr=True)
# The classifier's average pooling over the last 7×7 map, which the FCN discards (§4.1) and
# Table 1's receptive field counts.
CLASSIFIER_POOL = nn.AvgPool2d(7, stride=1)

# Inception modules: (1×1, 3×3 reduce, 3×3, 5×5 reduce, 5×5, pool projection) output channels.
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


class Inception(nn.Module):
    """Four branches concatenated: 1×1; 1×1 then 3×3; 1×1 then 5×5; 3×3 max pooling then
    1×1 (BVLC's ``inception_*`` with its layer names)."""

    def __init__(self, cin: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        one, r3, three, r5, five, proj = widths
        self.add_module("1x1", nn.Conv2d(cin, one, 1))
        self.add_module("3x3_reduce", nn.Conv2d(cin, r3, 1))
        self.add_module("3x3", nn.Conv2d(r3, three, 3, padding=1))
        self.add_module("5x5_reduce", nn.Conv2d(cin, r5, 1))
        self.add_module("5x5", nn.Conv2d(r5, five, 5, padding=2))
        self.pool = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
        self.pool_proj = nn.Conv2d(cin, proj, 1)
        self.channels = one + three + five + proj

    def forward(self, x: Tensor) -> Tensor:
        layer = self._modules
        branches = [
            F.relu(layer["1x1"](x)),
            F.relu(layer["3x3"](F.relu(layer["3x3_reduce"](x)))),
            F.relu(layer["5x5"](F.relu(layer["5x5_reduce"](x)))),
            F.relu(self.pool_proj(self.pool(x))),
        ]
        return torch.cat(branches, 1)


def _stage(**layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(OrderedDict(layers))


def _lrn() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)


@BACKBONES.register("bvlc_googlenet")
def bvlc_googlenet(*, geometry: str = "modern", pretrained: Pretrained = False) -> Backbone:
    """GoogLeNet as the paper used it (BVLC's Caffe net: 5×5 branches, LRN, Caffe's ceil-mode
    pooling). ImageNet weights: ``fcnseg import-caffe bvlc_googlenet.caffemodel --out F`` and
    ``pretrained=F``. Taps: conv1 (2), conv2 (4), inception 3b (8), 4e (16), 5b (32)."""
    modern_only("bvlc_googlenet", geometry)
    _no_download("bvlc_googlenet", pretrained)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    layers["conv1"] = _stage(**{"7x7_s2": nn.Conv2d(3, 64, 7, stride=2, padding=3)}, relu=nn.ReLU())
    layers["pool1"] = _stage(**{"3x3_s2": nn.MaxPool2d(3, 2, ceil_mode=True)}, norm1=_lrn())
    layers["conv2"] = _stage(
        **{"3x3_reduce": nn.Conv2d(64, 64, 1)},
        relu_reduce=nn.ReLU(),
        **{"3x3": nn.Conv2d(64, 192, 3, padding=1)},
        relu=nn.ReLU(),
        norm2=_lrn(),
    )
    channels = 192
    for name, widths in INCEPTION.items():
        if name in ("3a", "4a", "5a"):  # a stride-2 pooling before each group
            pool = f"pool{int(name[0]) - 1}"
            layers[pool] = _stage(**{"3x3_s2": nn.MaxPool2d(3, 2, ceil_mode=True)})
        block = Inception(channels, widths)
        layers[f"inception_{name}"] = block
        channels = block.channels
    net = Backbone(
        layers,
        taps={2: "conv1", 4: "conv2", 8: "inception_3b", 16: "inception_4e", 32: "inception_5b"},
        normalization=BVLC_MEAN,
    )
    if pretrained:
        load_strict(net, read_state_dict(pretrained), "bvlc_googlenet", pretrained)
    return net


@BACKBONES.register("caffenet")
def caffenet(*, geometry: str = "modern", pretrained: Pretrained = False) -> Backbone:
    """CaffeNet, the AlexNet of the authors' FCN-AlexNet (grouped convolutions, LRN after
    pooling), convolutionalized with reference layer names; ``geometry="caffe"`` pads conv1 by
    100 and pools in ceil mode as the reference does. ImageNet weights:
    ``fcnseg import-caffe bvlc_reference_caffenet.caffemodel --out F`` and ``pretrained=F``."""
    _no_download("caffenet", pretrained)
    caffe = geometry == "caffe"

    def pool() -> nn.MaxPool2d:
        return nn.MaxPool2d(3, 2, ceil_mode=caffe)

    layers = OrderedDict(
        conv1=nn.Conv2d(3, 96, 11, stride=4, padding=100 if caffe else 5),
        relu1=nn.ReLU(),
        pool1=pool(),
        norm1=_lrn(),
        conv2=nn.Conv2d(96, 256, 5, padding=2, groups=2),
        relu2=nn.ReLU(),
        pool2=pool(),
        norm2=_lrn(),
        conv3=nn.Conv2d(256, 384, 3, padding=1),
        relu3=nn.ReLU(),
        conv4=nn.Conv2d(384, 384, 3, padding=1, groups=2),
        relu4=nn.ReLU(),
        conv5=nn.Conv2d(384, 256, 3, padding=1, groups=2),
        relu5=nn.ReLU(),
        pool5=pool(),
        # fc6 and fc7 convolutionalized (§3.1): fc6 sees pool5's 6×6 (kept in size when modern).
        fc6=nn.Conv2d(256, 4096, 6, padding=0 if caffe else 3),
        relu6=nn.ReLU(),
        drop6=nn.Dropout(),
        fc7=nn.Conv2d(4096, 4096, 1),
        relu7=nn.ReLU(),
        drop7=nn.Dropout(),
    )
    net = Backbone(
        layers,
        taps={4: "relu1", 8: "relu2", 16: "relu5", 32: "drop7"},
        normalization=CAFFE_BGR,
    )
    if pretrained:
        load_strict(net, read_state_dict(pretrained), "caffenet", pretrained)
    return net


def _no_download(name: str, pretrained: Pretrained) -> None:
    if pretrained is True:
        raise ConfigError(
            f"{name}'s ImageNet weights are BVLC's Caffe file: import it with `fcnseg "
            f"import-caffe FILE.caffemodel --out {name}.safetensors` and pass that file: "
            f"--pretrained-backbone {name}.safetensors"
        )
