"""Shared fixtures: models are costly to build (VGG16 has 134M parameters), so build once."""

from __future__ import annotations

import pytest
import torch

import fcnseg

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def vgg_models() -> dict[tuple[str, str], fcnseg.FCN]:
    """Every variant in both geometries, VGG16, 3 classes, eval mode."""
    out = {}
    for geometry in ("caffe", "modern"):
        for variant in fcnseg.list_models():
            torch.manual_seed(0)
            m = fcnseg.build_fcn(variant, num_classes=3, geometry=geometry).eval()
            out[m.meta.variant, geometry] = m
    return out
