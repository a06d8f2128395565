"""load_reference: reference-named VGG16 FCN weights, strict, equal to the reference nets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor

import fcnseg
from fcnseg.blocks.upsampling import bilinear_kernel
from fcnseg.errors import CheckpointError

VGG = [(1, 2), (2, 2), (3, 3), (4, 3), (5, 3)]  # (block, convs)
WIDTH = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}


def reference_state(classes: int, seed: int = 0) -> dict[str, Tensor]:
    """A state dict named as the reference FCN-8s, with small random weights."""
    g = torch.Generator().manual_seed(seed)
    state, cin = {}, 3
    for block, convs in VGG:
        for i in range(1, convs + 1):
            cout = WIDTH[block]
            state[f"conv{block}_{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * 0.05
            state[f"conv{block}_{i}.bias"] = torch.randn(cout, generator=g) * 0.01
            cin = cout
    state["fc6.weight"] = torch.randn(4096, 512, 7, 7, generator=g) * 0.005
    state["fc6.bias"] = torch.randn(4096, generator=g) * 0.01
    state["fc7.weight"] = torch.randn(4096, 4096, 1, 1, generator=g) * 0.02
    state["fc7.bias"] = torch.randn(4096, generator=g) * 0.01
    for name, c in (("score_fr", 4096), ("score_pool4", 512), ("score_pool3", 256)):
        state[f"{name}.weight"] = torch.randn(classes, c, 1, 1, generator=g) * 0.01
        state[f"{name}.bias"] = torch.randn(classes, generator=g) * 0.01
    for name, k in (("upscore2", 4), ("upscore_pool4", 4), ("upscore8", 16)):
        w = torch.zeros(classes, classes, k, k)
        w[range(classes), range(classes)] = bilinear_kernel(k)
        if name != "upscore8":  # learned in the reference: not bilinear any more
            w += torch.randn(classes, classes, k, k, generator=g) * 0.01
        state[f"{name}.weight"] = w
    return state


def reference_fcn8s(s: dict[str, Tensor], x: Tensor) -> Tensor:
    """The reference FCN-8s written out as its prototxt, crops 5, 9 and 31 as published."""
    h = x
    for block, convs in VGG:
        for i in range(1, convs + 1):
            pad = 100 if (block, i) == (1, 1) else 1
            h = F.relu(
                F.conv2d(h, s[f"conv{block}_{i}.weight"], s[f"conv{block}_{i}.bias"], padding=pad)
            )
        h = F.max_pool2d(h, 2, 2, ceil_mode=True)
        if block == 3:
            pool3 = h
        if block == 4:
            pool4 = h
    h = F.relu(F.conv2d(h, s["fc6.weight"], s["fc6.bias"]))
    h = F.relu(F.conv2d(h, s["fc7.weight"], s["fc7.bias"]))
    h = F.conv2d(h, s["score_fr.weight"], s["score_fr.bias"])
    up2 = F.conv_transpose2d(h, s["upscore2.weight"], stride=2)
    sp4 = F.conv2d(pool4, s["score_pool4.weight"], s["score_pool4.bias"])
    h = up2 + sp4[..., 5 : 5 + up2.shape[2], 5 : 5 + up2.shape[3]]
    up4 = F.conv_transpose2d(h, s["upscore_pool4.weight"], stride=2)
    sp3 = F.conv2d(pool3, s["score_pool3.weight"], s["score_pool3.bias"])
    h = up4 + sp3[..., 9 : 9 + up4.shape[2], 9 : 9 + up4.shape[3]]
    h = F.conv_transpose2d(h, s["upscore8.weight"], stride=8)
    return h[..., 31 : 31 + x.shape[2], 31 : 31 + x.shape[3]]


@pytest.fixture(scope="module")
def state() -> dict[str, Tensor]:
    return reference_state(classes=3)


@pytest.fixture(scope="module")
def model(state: dict[str, Tensor]) -> fcnseg.FCN:
    return fcnseg.load_reference(state, variant="fcn8s").eval()


@pytest.mark.parametrize("size", [(1, 1), (23, 41), (64, 48)])
def test_outputs_equal_the_reference(state: dict, model: fcnseg.FCN, size: tuple) -> None:
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_fcn8s(state, x), atol=1e-4, rtol=1e-4)


def test_reference_normalisation_is_bgr_mean(model: fcnseg.FCN) -> None:
    assert model.normalization.bgr and model.normalization.std == (1.0, 1.0, 1.0)


def test_loads_from_a_file(tmp_path, state: dict) -> None:
    path = tmp_path / "fcn8s.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    assert fcnseg.load_reference(path).num_classes == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("score_pool3.bias"), "missing score_pool3.bias"),
        (lambda s: s.__setitem__("extra.weight", torch.zeros(1)), "unexpected extra.weight"),
        (lambda s: s.__setitem__("fc7.bias", torch.zeros(10)), r"fc7.bias is \(10,\)"),
        (lambda s: s["upscore8.weight"].__setitem__((0, 1), 1.0), "mixes classes"),
    ],
)
def test_strict_errors_name_the_tensor(state: dict, change, message: str) -> None:
    broken = {k: v.clone() for k, v in state.items()}
    change(broken)
    with pytest.raises(CheckpointError, match=message):
        fcnseg.load_reference(broken)


def test_weights_of_another_variant_are_refused(state: dict) -> None:
    with pytest.raises(CheckpointError, match="missing upscore16.weight"):
        fcnseg.load_reference(state, variant="fcn16s")
