"""§3.1 convolutionalization and §3.2 shift-and-stitch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import fcnseg


@pytest.mark.parametrize("name", ["alexnet", "vgg16"])
def test_same_scores_on_224(name: str) -> None:
    torch.manual_seed(0)
    classifier = torchvision.models.get_model(name, weights=None).eval()
    dense = fcnseg.convolutionalize(classifier).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(dense(x).flatten(1), classifier(x), atol=1e-4, rtol=1e-4)


def test_larger_image_gives_a_map_of_scores() -> None:
    # Figure 2: the same net on a bigger image returns a spatial heatmap of class scores.
    dense = fcnseg.convolutionalize(torchvision.models.alexnet(weights=None)).eval()
    with torch.no_grad():
        assert dense(torch.randn(1, 3, 352, 416)).shape == (1, 1000, 5, 7)


def test_needs_features_and_classifier() -> None:
    with pytest.raises(ValueError, match="features"):
        fcnseg.convolutionalize(nn.Linear(2, 2))


def _gamma(terms: int) -> float:
    """Higham's γ_n: the relative bound of a float32 sum of n products, in any order."""
    u = torch.finfo(torch.float32).eps / 2
    return terms * u / (1 - terms * u)


def test_shift_and_stitch_equals_filter_rarefaction() -> None:
    torch.manual_seed(0)
    conv1, conv2 = nn.Conv2d(2, 4, 3), nn.Conv2d(4, 3, 3)
    coarse = nn.Sequential(conv1, nn.ReLU(), nn.MaxPool2d(2, 2), conv2)
    # §3.2: remove the pooling stride and dilate the filters after it by that stride.
    rarefied = nn.Conv2d(4, 3, 3, dilation=2)
    rarefied.load_state_dict(conv2.state_dict())
    dense_net = nn.Sequential(conv1, nn.ReLU(), nn.MaxPool2d(2, 1), rarefied)
    x = torch.randn(1, 2, 21, 18)
    with torch.no_grad():
        stitched = fcnseg.shift_and_stitch(coarse, x, 2)
        expected = dense_net(x)
        # Both compute the same products; only the order of the float32 sums may differ by
        # CPU and kernel. Each sum of n products is within γ_n Σ|w x| of the exact one; the
        # first layer's error passes through ReLU and max pooling (1-Lipschitz) and is then
        # weighted by |w2|. Two such results differ by at most twice the bound.
        first = F.conv2d(x.abs(), conv1.weight.abs(), conv1.bias.abs())
        error1 = F.max_pool2d(_gamma(2 * 9) * first, 2, 1)
        hidden = F.max_pool2d(F.relu(conv1(x)), 2, 1).abs()
        second = F.conv2d(hidden, conv2.weight.abs(), conv2.bias.abs(), dilation=2)
        bound = _gamma(4 * 9) * second + F.conv2d(error1, conv2.weight.abs(), dilation=2)
    assert stitched.shape == expected.shape
    assert ((stitched - expected).abs() <= 2 * bound).all()
