"""--init-from: staging (§4.2) and fine-tuning across class sets, with and without a class map."""

from __future__ import annotations

import pytest
import torch

import fcnseg
from fcnseg.errors import CheckpointError, ConfigError
from fcnseg.models import build_fcn
from fcnseg.training import init_from

BACKBONE = "timm:test_resnet"
CAMVID_LIKE = ["Sky", "Building", "Road", "Car", "Pedestrian"]


def randomised(model):
    torch.manual_seed(0)
    for p in model.parameters():
        p.data.normal_()
    return model


def test_staging_loads_matching_tensors_and_keeps_new_scores_at_zero(tmp_path) -> None:
    coarse = randomised(build_fcn("fcn32s", num_classes=4, backbone=BACKBONE))
    fcnseg.save(coarse, tmp_path / "coarse.safetensors")
    fine = build_fcn("fcn8s", num_classes=4, backbone=BACKBONE)
    upscore2 = fine.upscore2.weight.clone()
    report = init_from(fine, tmp_path / "coarse.safetensors")
    assert len(report.taken) == len(coarse.backbone.state_dict()) + 2  # backbone and score_fr
    assert set(report.fresh) == {
        "upscore2.weight",
        "score_pool4.weight",
        "score_pool4.bias",
        "upscore_pool4.weight",
        "score_pool3.weight",
        "score_pool3.bias",
        "upscore8.weight",
    }
    for name, tensor in coarse.backbone.state_dict().items():
        assert torch.equal(fine.backbone.state_dict()[name], tensor)
    assert torch.equal(fine.score_fr.weight, coarse.score_fr.weight)
    # §4.2: the new skips add nothing at first; the 2× upsampling is still bilinear.
    assert fine.score_pool4.weight.abs().sum() == 0 and fine.score_pool3.weight.abs().sum() == 0
    assert torch.equal(fine.upscore2.weight, upscore2)


def test_other_classes_take_the_backbone_and_start_the_score_layers_afresh(tmp_path) -> None:
    old = randomised(build_fcn("fcn16s", num_classes=5, backbone=BACKBONE))
    fcnseg.save(old, tmp_path / "old.safetensors", classes=CAMVID_LIKE)
    new = build_fcn("fcn16s", num_classes=3, backbone=BACKBONE)
    new.meta = new.meta.with_(classes=["road", "car", "lane"])
    fresh = {k: v.clone() for k, v in new.state_dict().items()}
    report = init_from(new, tmp_path / "old.safetensors")
    assert report.taken == [f"backbone.{k}" for k in old.backbone.state_dict()]
    assert all("other classes" in why for why in report.fresh.values())
    assert not report.carried
    for name in report.fresh:  # exactly as built: zero scores, bilinear upsampling (§4.2)
        assert torch.equal(new.state_dict()[name], fresh[name]), name
    lines = report.lines()
    assert lines[0].startswith(f"initialised {len(report.taken)} of {len(fresh)} tensors")
    assert "  not taken: score_fr.weight (other classes: started as §4.2)" in lines


def test_a_class_map_carries_the_shared_classes_rows(tmp_path) -> None:
    old = randomised(build_fcn("fcn16s", num_classes=5, backbone=BACKBONE))
    fcnseg.save(old, tmp_path / "old.safetensors", classes=CAMVID_LIKE)
    new = build_fcn("fcn16s", num_classes=3, backbone=BACKBONE)
    new.meta = new.meta.with_(classes=["road", "car", "lane"])
    report = init_from(new, tmp_path / "old.safetensors", "auto")
    assert report.carried == [("road", "Road"), ("car", "Car")]
    for layer in ("score_fr", "score_pool4"):
        ours, theirs = getattr(new, layer), getattr(old, layer)
        assert torch.equal(ours.weight[:2], theirs.weight[[2, 3]])
        assert torch.equal(ours.bias[:2], theirs.bias[[2, 3]])
        assert ours.weight[2].abs().sum() == 0 and ours.bias[2] == 0  # lane: new, at zero
    up_new, up_old = new.upscore2.weight, old.upscore2.weight
    assert torch.equal(up_new[:2, :2], up_old[[2, 3]][:, [2, 3]])
    bilinear = build_fcn("fcn16s", num_classes=3, backbone=BACKBONE).upscore2.weight[2, 2]
    assert torch.equal(up_new[2, 2], bilinear)
    assert up_new[2, :2].abs().sum() == 0
    # by name, across spellings
    other = build_fcn("fcn16s", num_classes=3, backbone=BACKBONE)
    other.meta = other.meta.with_(classes=["street", "vehicle", "lane"])
    report = init_from(other, tmp_path / "old.safetensors", "street=Road,vehicle=car")
    assert report.carried == [("street", "Road"), ("vehicle", "Car")]
    assert torch.equal(other.score_fr.weight[1], old.score_fr.weight[3])


def test_class_map_and_backbone_mistakes_are_one_line(tmp_path) -> None:
    old = build_fcn("fcn32s", num_classes=5, backbone=BACKBONE)
    fcnseg.save(old, tmp_path / "old.safetensors", classes=CAMVID_LIKE)
    new = build_fcn("fcn32s", num_classes=2, backbone=BACKBONE)
    new.meta = new.meta.with_(classes=["vessel", "background"])
    with pytest.raises(ConfigError, match="no class name is shared"):
        init_from(new, tmp_path / "old.safetensors", "auto")
    with pytest.raises(ConfigError, match=r"'tree' is not one of the file's classes"):
        init_from(new, tmp_path / "old.safetensors", "vessel=tree")
    with pytest.raises(ConfigError, match="expected auto, NEW=OLD"):
        init_from(new, tmp_path / "old.safetensors", "vessel")
    same = build_fcn("fcn32s", num_classes=5, backbone=BACKBONE)
    same.meta = same.meta.with_(classes=CAMVID_LIKE)
    with pytest.raises(ConfigError, match="same classes"):
        init_from(same, tmp_path / "old.safetensors", "auto")
    with pytest.raises(CheckpointError, match="backbone"):
        other = build_fcn("fcn8s", num_classes=5, backbone="timm:test_efficientnet")
        init_from(other, tmp_path / "old.safetensors")
