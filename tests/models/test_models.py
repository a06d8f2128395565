"""§4: every variant, geometry and backbone returns scores at exactly the input's size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import fcnseg
from fcnseg.blocks.upsampling import FixedUpsample, bilinear_kernel, learned_upsample

SIZES = [(1, 1), (2, 3), (17, 5), (31, 33), (64, 64), (97, 130)]


@pytest.mark.parametrize("geometry", ["caffe", "modern"])
@pytest.mark.parametrize("variant", fcnseg.list_models())
def test_any_input_size(vgg_models: dict, variant: str, geometry: str) -> None:
    model = vgg_models[variant, geometry]
    with torch.no_grad():
        for h, w in SIZES:
            assert model(torch.randn(1, 3, h, w)).shape == (1, 3, h, w)


# Every registered backbone but VGG16 (the fixture's); "timm" stands for any timm model.
OTHER_BACKBONES = [
    "timm:resnet18" if name == "timm" else name
    for name in fcnseg.list_backbones()
    if name != "vgg16"
]


@pytest.mark.parametrize("backbone", OTHER_BACKBONES)
def test_other_backbones_any_size(backbone: str) -> None:
    model = fcnseg.fcn8s(num_classes=4, backbone=backbone).eval()
    with torch.no_grad():
        for h, w in [(1, 1), (33, 17), (70, 45)]:
            assert model(torch.randn(2, 3, h, w)).shape == (2, 4, h, w)


@pytest.mark.parametrize("variant", ["fcn32s", "fcn16s", "fcn8s", "fcn4s"])
def test_modern_geometry_computes_every_output_pixel(variant: str) -> None:
    # Each odd-kernel 2× upsampling makes 2n − 1 positions of n unless its input is extended:
    # FCN-8s would compute 32n − 31 of 32n and copy the last 31 rows and columns.
    torch.manual_seed(0)
    model = fcnseg.build_fcn(variant, num_classes=3, backbone="timm:test_resnet").eval()
    for name, p in model.named_parameters():
        if name.startswith("score"):
            torch.nn.init.normal_(p, std=0.1)
    with torch.no_grad():
        scores = model(torch.randn(1, 3, 64, 96))
    assert (scores[..., 1:, :] != scores[..., :-1, :]).any(dim=(0, 1, 3)).all()
    assert (scores[..., 1:] != scores[..., :-1]).any(dim=(0, 1, 2)).all()


def test_new_score_layers_start_at_zero(vgg_models: dict) -> None:
    # §4.2: a new skip adds nothing at first, so FCN-16s starts as the FCN-32s it grew from.
    model = vgg_models["fcn8s", "modern"]
    for name in ("score_fr", "score_pool4", "score_pool3"):
        assert getattr(model, name).weight.abs().sum() == 0


def test_upsamplers_learned_and_fixed(vgg_models: dict) -> None:
    model = vgg_models["fcn8s", "caffe"]
    params = dict(model.named_parameters())
    assert "upscore2.weight" in params and "upscore_pool4.weight" in params
    assert "upscore8.weight" not in params and "upscore8.weight" in model.state_dict()


def test_at_once_scales_the_taps() -> None:
    model = fcnseg.fcn8s(num_classes=2, backbone="efficientnet_lite0", at_once=True)
    assert model.skip_scale == {16: 0.01, 8: 0.0001}


def test_bilinear_kernel_matches_interpolate_inside() -> None:
    x = torch.randn(1, 2, 6, 7)
    for factor in (2, 4, 8):
        up = FixedUpsample(2, factor=factor, padding=factor // 2)(x)
        ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        m = factor  # the border, where interpolate clamps and the convolution pads with zeros
        torch.testing.assert_close(up[..., m:-m, m:-m], ref[..., m:-m, m:-m], atol=1e-5, rtol=1e-5)


def test_odd_bilinear_kernel_is_align_corners() -> None:
    x = torch.randn(1, 1, 5, 5)
    up = FixedUpsample(1, factor=2, kernel=3, padding=1)(x)
    ref = F.interpolate(x, size=(9, 9), mode="bilinear", align_corners=True)
    torch.testing.assert_close(up, ref, atol=1e-5, rtol=1e-5)
    assert bilinear_kernel(3).tolist() == [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]]


def test_learned_upsample_starts_bilinear_per_class() -> None:
    layer = learned_upsample(3, factor=2)
    assert torch.equal(layer.weight[1, 1], bilinear_kernel(4))
    assert layer.weight[0, 1].abs().sum() == 0


def test_predict_normalises_uint8() -> None:
    model = fcnseg.fcn32s(num_classes=2, backbone="efficientnet_lite0").eval()
    image = torch.randint(0, 256, (1, 3, 40, 50), dtype=torch.uint8)
    assert model.predict(image).shape == (1, 40, 50)


def test_unknown_names_are_clear() -> None:
    with pytest.raises(ValueError, match="unknown backbone"):
        fcnseg.fcn8s(num_classes=2, backbone="vgg17")
    with pytest.raises(ValueError, match="geometry='modern'"):
        fcnseg.fcn8s(num_classes=2, backbone="resnet50", geometry="caffe")


@pytest.mark.parametrize("variant", fcnseg.list_models())
def test_every_variant_saves_and_loads(variant: str, tmp_path) -> None:
    model = fcnseg.build_fcn(variant, num_classes=2, backbone="timm:resnet18").eval()
    torch.nn.init.normal_(model.score_fr.weight, std=0.1)
    fcnseg.save(model, tmp_path / "m.safetensors", classes=["a", "b"])
    loaded = fcnseg.load(tmp_path / "m.safetensors").eval()
    x = torch.randn(1, 3, 40, 50)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.meta.variant == variant and model.meta.classes is None  # save changes nothing


def test_finer_skips_start_as_the_coarser_net(vgg_models: dict) -> None:
    """§4.2 continued past the paper: FCN-4s and FCN-2s add zero-initialised scores at the
    stride-4 and stride-2 taps, so grown from FCN-8s they first compute exactly what it did."""
    x = torch.randn(1, 3, 61, 75)
    for geometry in ("caffe", "modern"):
        coarse = vgg_models["fcn8s", geometry]
        for variant in ("fcn4s", "fcn2s"):
            fine = fcnseg.build_fcn(variant, num_classes=3, geometry=geometry).eval()
            state = fine.state_dict()
            state.update({k: v for k, v in coarse.state_dict().items() if k in state})
            fine.load_state_dict(state)
            with torch.no_grad():
                assert torch.allclose(fine(x), coarse(x), atol=1e-5, rtol=1e-5)


def test_fcn1s_starts_as_the_fcn2s_it_grows_from() -> None:
    """The stride-1 skip adds zero-initialised scores, and its 2× upsampling (learned in
    FCN-1s, FCN-2s's fixed final one) starts bilinear: grown from FCN-2s, FCN-1s first
    computes what it did."""
    torch.manual_seed(0)
    coarse = fcnseg.fcn2s(num_classes=3, backbone="timm:resnet18").eval()
    for name, p in coarse.named_parameters():
        if name.startswith("score"):
            torch.nn.init.normal_(p, std=0.1)
    fine = fcnseg.fcn1s(num_classes=3, backbone="timm:resnet18").eval()
    state = fine.state_dict()
    grown = {k: v for k, v in coarse.state_dict().items() if state[k].shape == v.shape}
    assert set(state) - set(grown) == {
        "score_pool0.weight",
        "score_pool0.bias",
        "upscore_pool1.weight",
    }
    fine.load_state_dict({**state, **grown})
    x = torch.randn(1, 3, 45, 62)
    with torch.no_grad():
        torch.testing.assert_close(fine(x), coarse(x), atol=1e-5, rtol=1e-5)
    assert fine.final is None and "upscore_pool1.weight" in dict(fine.named_parameters())


def test_dense_stem_is_the_strided_stem_at_every_pixel() -> None:
    """§3.2: the first convolution at stride 1, subsampled, is the strided one; the rest of
    the net runs on that subsample and so computes what it computes without the dense tap."""
    torch.manual_seed(0)
    backbone = fcnseg.fcn1s(num_classes=2, backbone="timm:resnet18").backbone.eval()
    assert backbone.dense_stride == 2 and backbone.taps[1] == backbone.taps[2] == "act1"
    x = torch.randn(2, 3, 37, 50)
    with torch.no_grad():
        dense, plain = backbone(x, (1, 2, 8)), backbone(x, (2, 8))
    assert dense[1].shape[-2:] == (37, 50)
    torch.testing.assert_close(dense[1][..., ::2, ::2], plain[2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dense[8], plain[8], atol=1e-5, rtol=1e-5)
    assert backbone.field(1) == fcnseg.Field(size=7, stride=1, offset=0)


def test_finer_taps_are_the_reference_pools(vgg_models: dict) -> None:
    model = vgg_models["fcn2s", "caffe"]
    assert model.backbone.taps[4] == "pool2" and model.backbone.taps[2] == "pool1"
    assert [n for n in ("score_pool2", "fuse_pool1", "upscore_pool2") if hasattr(model, n)] == [
        "score_pool2",
        "fuse_pool1",
        "upscore_pool2",
    ]
    # The crops continue the reference's 5, 9 (pool4, pool3) from the computed geometry.
    assert model.crops["fuse_pool4"] == 5 and model.crops["fuse_pool3"] == 9
    assert model.final == "upscore_pool1"


def test_vgg_stride_1_tap_is_relu1_2(vgg_models: dict) -> None:
    for geometry in ("caffe", "modern"):
        model = vgg_models["fcn1s", geometry]
        assert model.backbone.taps[1] == "relu1_2" and model.backbone.dense_stride == 1
        assert "fuse_pool0" in model.crops


def test_a_backbone_without_the_tap_is_one_line() -> None:
    with pytest.raises(fcnseg.errors.ConfigError, match="no stride-2 tap"):
        fcnseg.fcn2s(num_classes=2, backbone="alexnet")
    # GoogLeNet's first layer is a stage (convolution and ReLU), not a strided convolution.
    with pytest.raises(fcnseg.errors.ConfigError, match="no stride-1 tap.*fcn2s"):
        fcnseg.fcn1s(num_classes=2, backbone="bvlc_googlenet")
