"""Inputs beyond RGB (``in_channels``): the pretrained first convolution adapted as timm does,
one normalisation entry per channel, and the channel count kept through model files."""

from __future__ import annotations

import pytest
import torch
from timm.models import adapt_input_conv

import fcnseg
from fcnseg.errors import CheckpointError, ConfigError
from fcnseg.models import ModelMeta, Normalization
from fcnseg.models.normalization import CAFFE_BGR, IMAGENET


@pytest.mark.parametrize("channels", [1, 4])
def test_pretrained_first_convolution_is_adapted_as_timm_does(channels: int) -> None:
    rgb = fcnseg.fcn32s(num_classes=2, backbone="efficientnet_lite0", pretrained_backbone=True)
    more = fcnseg.fcn32s(
        num_classes=2, backbone="efficientnet_lite0", pretrained_backbone=True, in_channels=channels
    )
    expected = adapt_input_conv(channels, rgb.backbone.first_conv.weight.detach())
    assert torch.equal(more.backbone.first_conv.weight, expected)
    # Every other tensor is the ImageNet one.
    rest = {k: v for k, v in more.backbone.state_dict().items() if "conv_stem" not in k}
    assert all(torch.equal(v, rgb.backbone.state_dict()[k]) for k, v in rest.items())
    assert more.meta.in_channels == channels == more.normalization.channels


@pytest.mark.parametrize("backbone", ["vgg16", "alexnet", "resnet50", "googlenet"])
def test_every_backbone_takes_other_channel_counts(backbone: str) -> None:
    model = fcnseg.fcn16s(num_classes=3, backbone=backbone, in_channels=5).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 5, 67, 45)).shape == (1, 3, 67, 45)


def test_extra_channels_keep_rgb_statistics_and_take_theirs() -> None:
    norm = IMAGENET.for_channels(5, ((7.8, 1.0), (0.5, 2.0)))
    assert norm.mean == (*IMAGENET.mean, 7.8, 1.0) and norm.std == (*IMAGENET.std, 0.5, 2.0)
    grey = IMAGENET.for_channels(1)
    assert grey.mean == (sum(IMAGENET.mean) / 3,) and grey.std == (sum(IMAGENET.std) / 3,)


def test_bgr_swaps_only_the_colour_channels() -> None:
    norm = CAFFE_BGR.for_channels(4, ((7.8,), (1.0,)))
    x = torch.arange(4.0).view(1, 4, 1, 1).expand(1, 4, 2, 2)
    out = norm(x)[0, :, 0, 0].tolist()
    mean = CAFFE_BGR.mean
    assert out == pytest.approx([2 - mean[0], 1 - mean[1], 0 - mean[2], 3 - 7.8])


def test_channel_count_survives_the_model_file(tmp_path) -> None:
    model = fcnseg.fcn8s(num_classes=2, backbone="timm:test_resnet", in_channels=4)
    model.normalization = IMAGENET.for_channels(4, ((3.0,), (2.0,)))
    fcnseg.save(model, tmp_path / "m.safetensors")
    back = fcnseg.load(tmp_path / "m.safetensors").eval()
    assert back.meta.in_channels == 4 and back.normalization == model.normalization
    x = torch.randn(1, 4, 40, 40)
    with torch.no_grad():
        assert torch.equal(back(x), model.eval()(x))


@pytest.mark.parametrize(
    ("mean", "std"), [([1.0, 2.0], [1.0]), ([], []), ([1.0] * 1025, [1.0] * 1025)]
)
def test_normalisation_of_the_wrong_length_is_refused(mean, std) -> None:
    data = ModelMeta("fcn8s", "vgg16", "modern", 2, IMAGENET).to_json()
    data["normalization"] = {"mean": mean, "std": std}
    with pytest.raises(CheckpointError, match="one finite number per input channel"):
        ModelMeta.from_json(data, source="m.safetensors")


@pytest.mark.parametrize("channels", [0, 2000, 2.5, True])
def test_impossible_channel_counts_are_one_line(channels) -> None:
    with pytest.raises(ConfigError, match="in_channels"):
        fcnseg.fcn32s(num_classes=2, backbone="alexnet", in_channels=channels)


def test_normalisation_default_is_rgb() -> None:
    assert Normalization((1.0, 2.0, 3.0), (1.0, 1.0, 1.0)).channels == 3
