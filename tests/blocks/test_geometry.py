"""§3.1: receptive fields by the composition rule, and the crops of the reference nets."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

import fcnseg
from fcnseg.blocks.geometry import Field, GeometryError, crop_offset, receptive_field


def test_composition_rule() -> None:
    # f_ks ∘ g_k's' = (f∘g)_{k' + (k-1)s', ss'}
    g, f = nn.Conv2d(1, 1, 5, stride=2), nn.MaxPool2d(3, stride=3)
    field = receptive_field(nn.Sequential(g, f))
    assert (field.size, field.stride) == (5 + (3 - 1) * 2, 6)


def test_padding_moves_the_offset_and_dilation_widens_the_kernel() -> None:
    assert receptive_field(nn.Conv2d(1, 1, 3, padding=1)) == Field(3, 1, 0)
    assert receptive_field(nn.Conv2d(1, 1, 3, padding=100)) == Field(3, 1, -99)
    assert receptive_field(nn.Conv2d(1, 1, 3, dilation=4)).size == 9


@pytest.mark.parametrize(("name", "size"), [("vgg16", 404), ("alexnet", 355)])
def test_table1_nets_convolutionalized(name: str, size: int) -> None:
    net = fcnseg.convolutionalize(torchvision.models.get_model(name, weights=None))
    field = receptive_field(net)
    assert (field.size, field.stride) == (size, 32)


def test_the_papers_googlenet_has_table1s_field_and_torchvisions_its_own() -> None:
    from fcnseg.models.backbones.bvlc import CLASSIFIER_POOL

    bvlc = fcnseg.models.build_backbone("bvlc_googlenet")
    # Table 1 counts the classifier's 7×7 average pooling, which the FCN discards (§4.1).
    assert bvlc.field(32).size == 715
    assert receptive_field(CLASSIFIER_POOL, bvlc.field(32)) == Field(907, 32, 126)
    params = sum(p.numel() for p in bvlc.parameters())
    assert 5.9e6 < params < 6.0e6  # Table 1: 6M (with the 21-class scoring layer)
    assert fcnseg.models.build_backbone("googlenet").field(32).size == 379  # 3×3 for 5×5


def test_transposed_convolution_undoes_a_convolution() -> None:
    down, up = nn.Conv2d(1, 1, 4, stride=2, padding=1), nn.ConvTranspose2d(1, 1, 4, 2, padding=1)
    field = receptive_field(nn.Sequential(down, up))
    assert (field.stride, field.offset) == (1, 0)


def test_graph_branches_are_merged() -> None:
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(1, 1, 3, padding=1)
            self.b = nn.Conv2d(1, 1, 5, padding=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.a(x)) + self.b(x)

    assert receptive_field(Residual()) == Field(5, 1, 0)


def test_a_squeeze_excite_gate_sees_everything_and_moves_nothing() -> None:
    class Gated(nn.Module):
        def __init__(self, gate: str) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, stride=2)  # unpadded: output 0 centred on pixel 1
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Conv2d(4, 4, 1)
            self.gate = gate

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.conv(x)
            pooled = x.mean((2, 3), keepdim=True) if self.gate == "mean" else self.pool(x)
            return x + x * torch.sigmoid(self.fc(pooled))

    for gate in ("mean", "module"):
        assert receptive_field(Gated(gate)) == Field(math.inf, 2, 1)
    assert receptive_field(torchvision.models.mobilenet_v3_small(weights=None).features) == (
        Field(math.inf, 32, 0)
    )

    class RowMean(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.conv(x)
            return x * x.mean(3, keepdim=True)

    # Pooled along one axis only, the map is no square field: refused, not guessed.
    with pytest.raises(GeometryError, match="mean"):
        receptive_field(RowMean())


def test_linear_layers_have_no_field() -> None:
    with pytest.raises(GeometryError, match="convolutionalize"):
        receptive_field(torchvision.models.alexnet(weights=None))


@pytest.mark.parametrize(
    ("variant", "crops"),
    [
        ("fcn32s", {"score": 19}),
        ("fcn16s", {"fuse_pool4": 5, "score": 27}),
        ("fcn8s", {"fuse_pool4": 5, "fuse_pool3": 9, "score": 31}),
    ],
)
def test_reference_crops_are_computed(vgg_models: dict, variant: str, crops: dict) -> None:
    assert vgg_models[variant, "caffe"].crops == crops


@pytest.mark.parametrize("variant", ["fcn32s", "fcn16s", "fcn8s"])
def test_modern_geometry_aligns_without_crops(vgg_models: dict, variant: str) -> None:
    assert set(vgg_models[variant, "modern"].crops.values()) == {0}


def test_crop_offset_needs_equal_strides() -> None:
    with pytest.raises(GeometryError):
        crop_offset(Field(1, 2, 0), Field(1, 4, 0))


def test_fcn_alexnet_final_upsampling_and_crop_are_the_prototxts() -> None:
    # voc-fcn-alexnet: upscore is 63 wide, stride 32, and score crops by 18. A 64-wide kernel
    # would leave the scores half a pixel off the image; the parity is computed, not chosen.
    model = fcnseg.fcn32s(num_classes=21, backbone="alexnet", geometry="caffe")
    assert model.upscore.weight.shape[-1] == 63 and model.crops == {"score": 18}
