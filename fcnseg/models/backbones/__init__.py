"""Classification nets as FCN backbones (paper §4.1), built by name.

:mod:`.base` says what a backbone is and holds the registry; :mod:`.table1` has the paper's
nets (VGG16, AlexNet, and torchvision's GoogLeNet), :mod:`.bvlc` the paper's own GoogLeNet
(BVLC's Caffe net), :mod:`.modern` later ones (ResNet-50, EfficientNet-Lite0/1/2,
any timm model). To add a backbone, write its builder in one of them (or a new module imported
here) under ``@BACKBONES.register("name")``.
"""

from . import bvlc, modern, table1  # noqa: F401  (registers their builders)
from .base import BACKBONES, Backbone, Pretrained, adapt_input, build_backbone, list_backbones
from .modern import efficientnet_lite_imagenet

__all__ = [
    "BACKBONES",
    "Backbone",
    "Pretrained",
    "adapt_input",
    "build_backbone",
    "efficientnet_lite_imagenet",
    "list_backbones",
]
