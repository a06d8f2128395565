"""§3.1 convolutionalization and §3.2 shift-and-stitch."""

from __future__ import annotations

import pytest
import torch
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
    assert stitched.shape == expected.shape
    assert torch.equal(stitched, expected)
