"""The model builders, in the style of torchvision's ``models.segmentation``: one small
function per variant, keyword-only arguments, registered by name in :data:`MODELS`."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import ConfigError
from .backbones import Pretrained, build_backbone
from .fcn import FCN
from .meta import MAX_CLASSES, ModelMeta, check_heads
from .registries import MODELS

__all__ = [
    "MODELS",
    "build_fcn",
    "fcn1s",
    "fcn2s",
    "fcn4s",
    "fcn8s",
    "fcn16s",
    "fcn32s",
    "list_models",
]


def _build(
    variant: str,
    skips: tuple[int, ...],
    *,
    # The builders pass their keyword arguments on whole (``**locals()``): one signature, here.
    num_classes: int | Mapping[str, int],
    backbone: str,
    geometry: str,
    pretrained_backbone: Pretrained,
    at_once: bool,
    in_channels: int,
) -> FCN:
    heads = None
    if isinstance(num_classes, Mapping):
        heads = tuple(num_classes.items())
        problem = check_heads(heads)
        if problem:
            raise ConfigError(f"num_classes: {problem}, e.g. {{'sem': 33, 'geo': 3}}")
    elif (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, int)
        or not 1 <= num_classes <= MAX_CLASSES
    ):
        raise ConfigError(
            f"num_classes must be a whole number in 1–{MAX_CLASSES}, not {num_classes!r}"
        )
    net = build_backbone(
        backbone, geometry=geometry, pretrained=pretrained_backbone, in_channels=in_channels
    )
    meta = ModelMeta(
        variant=variant,
        backbone=backbone,
        geometry=geometry,
        num_classes=sum(num_classes.values()) if heads else num_classes,
        normalization=net.normalization,
        at_once=at_once,
        heads=heads,
    )
    return FCN(
        net, num_classes=num_classes, skips=skips, geometry=geometry, at_once=at_once, meta=meta
    )


@MODELS.register("fcn32s")
def fcn32s(
    *,
    num_classes: int | Mapping[str, int],
    backbone: str = "vgg16",
    geometry: str = "modern",
    pretrained_backbone: Pretrained = False,
    at_once: bool = False,
    in_channels: int = 3,
) -> FCN:
    """FCN-32s: class scores on the deepest layer, upsampled 32× (§4.1).

    Args:
        num_classes: number of classes; or, for a net of several heads, each head's name and
            class count (``{"sem": 33, "geo": 3}``: the paper's SIFT Flow net, §5).
        backbone: a name of :func:`fcnseg.list_backbones` (``"vgg16"``, ``"alexnet"``,
            ``"googlenet"``, ``"resnet50"``, ``"efficientnet_lite0"``) or
            ``"timm:<model name>"``.
        geometry: ``"modern"`` (size-keeping padding) or ``"caffe"`` (the reference nets).
        pretrained_backbone: ``True`` for ImageNet weights, or the path of a weight file.
        at_once: no effect without skips; accepted for a uniform signature.
        in_channels: channels of the input images: 3 for RGB, 4 for RGB-D (the paper's NYUDv2
            early fusion), any other number for grey images or multi-band rasters; the
            pretrained first convolution is adapted (:func:`fcnseg.models.adapt_input`).

    Returns:
        The :class:`FCN`; its ``forward`` returns N×num_classes×H×W logits.
    """
    return _build("fcn32s", (), **locals())


@MODELS.register("fcn16s")
def fcn16s(
    *,
    num_classes: int | Mapping[str, int],
    backbone: str = "vgg16",
    geometry: str = "modern",
    pretrained_backbone: Pretrained = False,
    at_once: bool = False,
    in_channels: int = 3,
) -> FCN:
    """FCN-16s: adds the stride-16 ``pool4`` skip (§4.2). Arguments as :func:`fcn32s`;
    ``at_once`` scales ``pool4`` by 0.01."""
    return _build("fcn16s", (16,), **locals())


@MODELS.register("fcn8s")
def fcn8s(
    *,
    num_classes: int | Mapping[str, int],
    backbone: str = "vgg16",
    geometry: str = "modern",
    pretrained_backbone: Pretrained = False,
    at_once: bool = False,
    in_channels: int = 3,
) -> FCN:
    """FCN-8s: adds the ``pool4`` and ``pool3`` skips (§4.2). Arguments as :func:`fcn32s`;
    ``at_once`` scales ``pool4`` by 0.01 and ``pool3`` by 0.0001."""
    return _build("fcn8s", (16, 8), **locals())


@MODELS.register("fcn4s")
def fcn4s(
    *,
    num_classes: int | Mapping[str, int],
    backbone: str = "vgg16",
    geometry: str = "modern",
    pretrained_backbone: Pretrained = False,
    at_once: bool = False,
    in_channels: int = 3,
) -> FCN:
    """FCN-4s: the skip architecture continued past the paper, adding the stride-4 tap
    (``pool2``) for thin structures. Arguments as :func:`fcn32s`."""
    return _build("fcn4s", (16, 8, 4), **locals())


@MODELS.register("fcn2s")
def fcn2s(
    *,
    num_classes: int | Mapping[str, int],
    backbone: str = "vgg16",
    geometry: str = "modern",
    pretrained_backbone: Pretrained = False,
    at_once: bool = False,
    in_channels: int = 3,
) -> FCN:
    """FCN-2s: adds the stride-2 tap (``pool1``) too, for backbones that have one (not
    AlexNet, whose first convolution strides by 4). Arguments as :func:`fcn32s`."""
    return _build("fcn2s", (16, 8, 4, 2), **locals())


@MODELS.register("fcn1s")
def fcn1s(
    *,
    num_classes: int | Mapping[str, int],
    backbone: str = "vgg16",
    geometry: str = "modern",
    pretrained_backbone: Pretrained = False,
    at_once: bool = False,
    in_channels: int = 3,
) -> FCN:
    """FCN-1s: adds the stride-1 tap (``pool0``) too, scores at every input pixel with no
    final upsampling: for structures a pixel or two wide, which bilinear upsampling from
    stride 2 cannot draw (a one-pixel line between two coarse positions). The tap is VGG16's
    ``relu1_2``, or for a net whose first convolution strides (ResNet, EfficientNet) that
    convolution evaluated densely. Arguments as :func:`fcn32s`."""
    return _build("fcn1s", (16, 8, 4, 2, 1), **locals())


def build_fcn(variant: str, **options: object) -> FCN:
    """An FCN by variant name (a name of :func:`list_models`); ``options`` as :func:`fcn32s`."""
    return MODELS[variant](**options)


def list_models() -> list[str]:
    """The variant names :func:`build_fcn` knows."""
    return MODELS.names()
