"""Nets of several heads (the paper's two-headed SIFT Flow net, §5): one score path per label
set with the reference names, each computing what a one-headed net with its weights would,
scored, predicted and lost head by head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fcnseg
from fcnseg.errors import CheckpointError, ConfigError
from fcnseg.models import ModelMeta
from fcnseg.models.normalization import IMAGENET
from fcnseg.training.loss import HeadsLoss, SegmentationLoss

HEADS = {"sem": 5, "geo": 3}


@pytest.fixture(scope="module")
def two_headed() -> fcnseg.FCN:
    torch.manual_seed(0)
    model = fcnseg.fcn8s(num_classes=HEADS, backbone="timm:test_resnet")
    for name, p in model.named_parameters():
        if name.startswith(("score", "upscore")):
            torch.nn.init.normal_(p, std=0.1)
    return model.eval()


def test_layers_carry_the_reference_suffixes() -> None:
    model = fcnseg.fcn16s(num_classes={"sem": 33, "geo": 3}, geometry="caffe")
    names = {k.rsplit(".", 1)[0] for k in model.state_dict() if not k.startswith("backbone")}
    assert names == {
        f"{layer}_{head}"
        for layer in ("score_fr", "upscore2", "score_pool4", "upscore16")
        for head in ("sem", "geo")
    }
    assert model.score_fr_geo.out_channels == 3 and model.upscore16_sem.weight.shape[0] == 33
    assert model.crops == fcnseg.fcn16s(num_classes=36, geometry="caffe").crops


def test_each_head_computes_its_own_one_headed_net(two_headed) -> None:
    x = torch.randn(2, 3, 45, 61)
    with torch.no_grad():
        both = two_headed(x)
    assert both.shape == (2, 8, 45, 61)
    for name, part in two_headed.meta.head_slices():
        alone = fcnseg.fcn8s(num_classes=HEADS[name], backbone="timm:test_resnet").eval()
        state = {
            k.replace(f"_{name}.", "."): v
            for k, v in two_headed.state_dict().items()
            if k.startswith("backbone") or f"_{name}." in k
        }
        alone.load_state_dict(state)
        with torch.no_grad():
            assert torch.equal(alone(x), both[:, part])
            assert torch.equal(two_headed.head(name)(x), both[:, part])


def test_predictions_are_one_class_map_per_head(two_headed) -> None:
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    predictor = fcnseg.Predictor(two_headed, precision="fp32")
    labels = predictor(image)
    expected = two_headed.predict(torch.from_numpy(image).permute(2, 0, 1)[None])[0]
    assert labels.shape == (2, 50, 70)
    # The predictor's prepared network rounds differently: only near-ties may differ.
    assert (labels.long() == expected).float().mean() >= 0.999
    probs = predictor.probabilities(image)
    assert probs.shape == (8, 50, 70)
    assert torch.allclose(probs[:5].sum(0), torch.ones(50, 70), atol=1e-5)
    assert torch.allclose(probs[5:].sum(0), torch.ones(50, 70), atol=1e-5)
    large = np.random.default_rng(1).integers(0, 256, (300, 290, 3), dtype=np.uint8)
    tiled = fcnseg.Predictor(two_headed, precision="fp32", tile=256)(large)
    assert tiled.shape == (2, 300, 290)
    # Tiles run the convolutions on other extents than the whole image: rounding may differ.
    assert (tiled == predictor(large)).float().mean() >= 0.999


def test_the_loss_is_the_heads_losses_summed() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 8, 6, 7, generator=generator)
    target = torch.stack([torch.randint(0, 5, (2, 6, 7)), torch.randint(0, 3, (2, 6, 7))], 1)
    target[0, 1, 0] = 255
    loss = HeadsLoss(
        [(slice(0, 5), SegmentationLoss(ignore_index=255)),
         (slice(5, 8), SegmentationLoss(ignore_index=255))]
    )  # fmt: skip
    expected = F.cross_entropy(logits[:, :5], target[:, 0], ignore_index=255) + F.cross_entropy(
        logits[:, 5:], target[:, 1], ignore_index=255
    )
    assert torch.allclose(loss(logits, target), expected, rtol=1e-6)


def test_heads_survive_the_model_file(two_headed, tmp_path) -> None:
    fcnseg.save(two_headed, tmp_path / "m.safetensors", classes=[f"c{i}" for i in range(8)])
    back = fcnseg.load(tmp_path / "m.safetensors").eval()
    assert back.meta.heads == (("sem", 5), ("geo", 3))
    assert back.meta.head("geo").classes == ("c5", "c6", "c7")
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(back(x), two_headed(x))


@pytest.mark.parametrize(
    ("heads", "words"),
    [
        ([["sem", 5], ["geo", 2]], "add up to 7"),
        ([["sem", 8]], "2–16"),
        ([["Sem", 5], ["geo", 3]], "lowercase name"),
        ([["sem", 5], ["sem", 3]], "repeat"),
    ],
)
def test_damaged_heads_metadata_is_one_line(heads, words) -> None:
    data = ModelMeta("fcn8s", "vgg16", "modern", 8, IMAGENET).to_json()
    data["heads"] = heads
    with pytest.raises(CheckpointError, match=words):
        ModelMeta.from_json(data, source="m.safetensors")


def test_bad_heads_in_the_builder_are_one_line() -> None:
    with pytest.raises(ConfigError, match="num_classes"):
        fcnseg.fcn32s(num_classes={"sem": 0, "geo": 3}, backbone="alexnet")
