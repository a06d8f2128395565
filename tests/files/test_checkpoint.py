"""fcnseg.save / fcnseg.load: one safetensors file rebuilds the same model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import fcnseg
from fcnseg.errors import CheckpointError


def test_round_trip_equal_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = fcnseg.fcn8s(num_classes=3, backbone="efficientnet_lite0", at_once=True).eval()
    for p in model.parameters():  # the zero-initialised score layers would hide a loss
        p.data.normal_(0, 0.02)
    path = tmp_path / "m.safetensors"
    fcnseg.save(model, path, classes=["a", "b", "c"], palette=[[0, 0, 0], [1, 2, 3], [4, 5, 6]])
    loaded = fcnseg.load(path).eval()
    x = torch.randn(1, 3, 45, 61)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.meta.classes == ("a", "b", "c")
    assert loaded.meta.at_once is True and loaded.normalization == model.normalization


def test_file_is_safetensors_with_metadata(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    fcnseg.save(fcnseg.fcn32s(num_classes=2, backbone="efficientnet_lite0"), path)
    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads(fh.metadata()["fcnseg"])
    assert meta["variant"] == "fcn32s" and meta["backbone"] == "efficientnet_lite0"
    assert not list(tmp_path.glob(".m.safetensors.*"))  # no temporary file left behind


def test_not_an_fcnseg_file(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(1)}, str(path))
    with pytest.raises(CheckpointError, match="other.safetensors: .* not an fcnseg model"):
        fcnseg.load(path)
    (tmp_path / "text.safetensors").write_text("nope")
    with pytest.raises(CheckpointError, match="text.safetensors: not a safetensors"):
        fcnseg.load(tmp_path / "text.safetensors")
