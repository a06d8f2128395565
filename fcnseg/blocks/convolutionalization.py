"""Adapting classifiers for dense prediction (paper §3.1, Figure 2).

A fully connected layer is a convolution whose kernel covers its whole input. Recast that way,
a classification net takes input of any size and returns a spatial map of class scores, with
the same weights and, on the training size, the same numbers.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict

from torch import nn

__all__ = ["convolutionalize"]


def _last_channels(features: nn.Module) -> int:
    convs = [m for m in features.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("the classifier's features have no convolution")
    return convs[-1].out_channels


def _as_conv(linear: nn.Linear, in_channels: int) -> nn.Conv2d:
    """The convolution computing ``linear`` on a ``k×k×in_channels`` map, weights kept."""
    k = math.isqrt(linear.in_features // in_channels)
    if k * k * in_channels != linear.in_features:
        raise ValueError(
            f"Linear({linear.in_features}, …) does not read a square map of {in_channels} channels"
        )
    conv = nn.Conv2d(in_channels, linear.out_features, k, bias=linear.bias is not None)
    # torch flattens C×H×W in that order, so the reshape is exact.
    conv.weight.data.copy_(linear.weight.data.view(linear.out_features, in_channels, k, k))
    if linear.bias is not None:
        conv.bias.data.copy_(linear.bias.data)
    return conv


def convolutionalize(classifier: nn.Module) -> nn.Sequential:
    """Turn a torchvision-style classification net into a fully convolutional one.

    The first ``Linear`` of ``classifier.classifier`` becomes a ``k×k`` convolution over the last
    feature map (``k = 7`` for VGG16, ``6`` for AlexNet), the following ones ``1×1``
    convolutions; activations and dropout are kept in place. The adaptive pooling between
    features and classifier is dropped: on the training size (224×224) it is the identity, so
    the scores are the classifier's; on a larger image the result is a map of scores.

    Args:
        classifier: a net with ``features`` and ``classifier`` (``nn.Sequential``) children,
            such as ``torchvision.models.vgg16()`` or ``alexnet()``. It is not modified.

    Returns:
        ``nn.Sequential(features=..., classifier=...)`` computing N×classes×h×w scores.
    """
    if not (hasattr(classifier, "features") and isinstance(classifier.classifier, nn.Sequential)):
        raise ValueError(
            "convolutionalize expects a net with `features` and a Sequential "
            "`classifier` (torchvision AlexNet or VGG)"
        )
    features = copy.deepcopy(classifier.features)
    channels = _last_channels(features)
    head: list[nn.Module] = []
    for layer in classifier.classifier:
        if isinstance(layer, nn.Linear):
            conv = _as_conv(layer, channels)
            head.append(conv)
            channels = conv.out_channels
        else:
            head.append(copy.deepcopy(layer))
    return nn.Sequential(OrderedDict(features=features, classifier=nn.Sequential(*head)))
