"""Predictor: same answer as the model's forward, fast paths, tiling, bounded memory."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from PIL import Image

import fcnseg
from fcnseg import inference
from fcnseg.errors import ConfigError
from fcnseg.inference import Predictor, backends, cpu_has_bf16, tile_windows, tiling
from fcnseg.inference import precision as calibration
from fcnseg.models import output_field


def _scored(model: fcnseg.FCN, std: float = 0.05) -> fcnseg.FCN:
    """Score layers start at zero (§4.2), which makes every pixel class 0; give them weights."""
    torch.manual_seed(1)
    for name, p in model.named_parameters():
        if name.startswith("score"):
            torch.nn.init.normal_(p, std=std)
    return model.eval()


def _reference(model: fcnseg.FCN, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(model.normalization(images))


def _same_classes(labels: torch.Tensor, scores: torch.Tensor) -> None:
    """``labels`` are the argmax of ``scores`` N×C×H×W up to rounding.

    The predictor computes the same function by other float32 arithmetic (batch norm folded
    into the convolutions, channels-last kernels, the upsampling as matrices), in an order each
    CPU's kernels choose. Sums of n terms then differ by about n·2⁻²⁴ of their magnitude, so
    where two classes' scores are that close either may win; everywhere else the class must be
    the same. 1e-3 of the largest score is a bound on such differences with margin (n ≲ 10⁴).
    """
    labels = labels.long().reshape(scores.shape[0], *scores.shape[2:])
    best = scores.max(1).values
    chosen = scores.gather(1, labels[:, None])[:, 0]
    tolerance = 1e-3 * scores.abs().amax()
    assert (best - chosen <= tolerance).all(), (best - chosen).max()
    assert (labels == scores.argmax(1)).float().mean() >= 0.99


def _built(build, **kwargs) -> fcnseg.FCN:
    torch.manual_seed(0)  # the backbone's random initialisation too: results depend on it
    return _scored(build(num_classes=3, **kwargs))


@pytest.fixture(scope="module")
def lite() -> fcnseg.FCN:
    return _built(fcnseg.fcn8s, backbone="efficientnet_lite0")


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (2, 3, 45, 70), dtype=torch.uint8, generator=g)


def test_fp32_equals_forward_argmax(lite, images):
    predictor = Predictor(lite, precision="fp32")
    labels = predictor(images)
    assert labels.dtype == torch.uint8 and labels.shape == (2, 45, 70)
    _same_classes(labels, _reference(lite, images))


def test_inputs_of_every_kind_and_size(lite, images):
    predictor = Predictor(lite, precision="fp32", batch_size=2)
    odd = images[0, :, :31, :50].contiguous()
    array = images[1].permute(1, 2, 0).numpy().copy()
    out = predictor([odd, Image.fromarray(array), array, images[0]])
    assert [tuple(o.shape) for o in out] == [(31, 50), (45, 70), (45, 70), (45, 70)]
    _same_classes(out[0], _reference(lite, odd[None]))
    assert torch.equal(out[1], out[2])  # one batch: the same arithmetic
    _same_classes(out[3], _reference(lite, images[:1]))
    _same_classes(predictor(images[0]), _reference(lite, images[:1]))
    grey = predictor(array[..., 0])
    assert torch.equal(grey, predictor(np.repeat(array[..., :1], 3, axis=2)))
    assert isinstance(fcnseg.predict(lite, array, precision="fp32"), np.ndarray)


def test_probabilities_are_the_softmax(lite, images):
    probs = Predictor(lite, precision="fp32").probabilities(images)
    expected = _reference(lite, images).softmax(1)
    assert probs.shape == expected.shape
    assert torch.allclose(probs, expected, atol=1e-5)


def test_caffe_geometry_crops(vgg_models):
    model = _scored(copy.deepcopy(vgg_models["fcn8s", "caffe"]), std=0.01)
    image = torch.randint(
        0, 256, (1, 3, 37, 52), dtype=torch.uint8, generator=torch.Generator().manual_seed(2)
    )
    labels = Predictor(model, precision="fp32")(image)
    _same_classes(labels, _reference(model, image))


@pytest.mark.skipif(not cpu_has_bf16(), reason="no bf16 instructions on this CPU")
def test_bf16_agrees_with_fp32(images):
    # ResNet-18: an untrained Lite0 (batch-norm statistics at their defaults) scores every
    # pixel with near-ties, where any rounding flips classes; 98–99.5% by seed.
    model = _built(fcnseg.fcn8s, backbone="timm:resnet18")
    predictor = Predictor(model, precision="bf16")
    agreement = (predictor(images).long() == _reference(model, images).argmax(1)).float().mean()
    assert agreement >= 0.99


@pytest.mark.skipif(not cpu_has_bf16(), reason="no bf16 instructions on this CPU")
def test_auto_keeps_bf16_only_if_it_agrees(lite, images, monkeypatch):
    monkeypatch.setattr(calibration, "auto_candidates", lambda device: ("bf16",))
    monkeypatch.setattr(calibration, "AGREEMENT", 0.0)
    predictor = Predictor(lite)
    assert predictor.calibrate(images[0]) in ("bf16", "fp32")  # the faster of the two
    assert set(predictor.calibration.agreement) == {"fp32", "bf16"}
    monkeypatch.setattr(calibration, "AGREEMENT", 1.01)
    predictor = Predictor(lite)
    with pytest.warns(UserWarning, match="using fp32"):
        predictor(images)  # calibrates on the first image it sees
    assert predictor.precision == "fp32" and predictor.agreement is not None


def test_auto_is_fp32_without_reduced_precision_instructions(lite, monkeypatch):
    monkeypatch.setattr("fcnseg.device.cpu_has_bf16", lambda: False)
    monkeypatch.setattr("fcnseg.device.cpu_has_fp16", lambda: False)
    predictor = Predictor(lite)
    assert (
        predictor.precision == "fp32"
        and predictor.calibrate(np.zeros((40, 40, 3), np.uint8)) == "fp32"
    )


def test_auto_takes_the_fastest_that_agrees(lite, images, monkeypatch):
    monkeypatch.setattr(calibration, "auto_candidates", lambda device: ("bf16", "fp16"))
    monkeypatch.setattr(calibration, "AGREEMENT", 0.0)  # both agree: speed decides
    predictor = Predictor(lite)
    chosen = predictor.calibrate(images[0])
    timed = predictor.calibration.seconds
    assert set(timed) == {"fp32", "bf16", "fp16"} and chosen == min(timed, key=timed.get)
    monkeypatch.setattr(calibration, "AGREEMENT", 1.01)  # none agrees: fp32, with a warning
    predictor = Predictor(lite)
    with pytest.warns(UserWarning, match=r"bf16 on .*fp16 on .*using fp32"):
        assert predictor.calibrate(images[0]) == "fp32"
    assert not predictor.calibration.seconds  # nothing to choose: nothing timed


def test_tile_windows_partition_the_image():
    for length in (1, 100, 544, 545, 1000, 2049):
        windows = tile_windows(length, tile=544, overlap=200)
        kept = [i for w in windows for i in range(w.keep_start, w.keep_stop)]
        assert kept == list(range(length))
        for w in windows:
            assert w.start % 32 == 0 and w.stop - w.start <= 544
            assert w.start <= w.keep_start and w.keep_stop <= w.stop
            # every kept pixel has half the overlap of real context or the image border
            assert w.keep_start - w.start >= 100 or w.start == 0
            assert w.stop - w.keep_stop >= 100 or w.stop == length
    with pytest.raises(ValueError, match="tile"):
        tile_windows(1000, tile=256, overlap=240)


@pytest.mark.parametrize("magnify", [1.0, 1.5])
def test_tiled_equals_whole_with_bounded_tiles(magnify):
    model = _built(fcnseg.fcn32s, backbone="timm:resnet18")
    # A working scale enlarges each tile: the resized sizes round, so near-ties may differ.
    model.meta = model.meta.with_(magnify=magnify)
    seen: list[tuple[int, ...]] = []
    # A hook on the model travels with the predictor's copy: it sees every input the net gets.
    model.backbone.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape))
    g = torch.Generator().manual_seed(3)
    image = torch.randint(0, 256, (3, 600, 610), dtype=torch.uint8, generator=g)
    image = torch.nn.functional.avg_pool2d(image[None].float(), 5, 1, 2)[0].to(torch.uint8)
    whole = Predictor(model, precision="fp32")(image)
    seen.clear()
    tiled = Predictor(model, precision="fp32", tile=544)
    assert tiled.overlap == int(np.ceil(output_field(model)))  # from the receptive field
    out = np.zeros((600, 610), dtype=np.uint8)
    tiled(image, out=out)
    assert (torch.from_numpy(out) == whole).float().mean() >= 0.999
    # (the net pads what it sees to its stride, 32)
    assert len(seen) > 1 and max(max(s[-2:]) for s in seen) <= math.ceil(544 * magnify / 32) * 32


def test_unbounded_field_warns(lite, monkeypatch):
    monkeypatch.setattr(backends, "output_field", lambda model: float("inf"))
    with pytest.warns(UserWarning, match="unbounded"):
        assert Predictor(lite, tile=256).overlap == 128


def test_batchnorm_folding_keeps_the_features():
    model = fcnseg.fcn32s(num_classes=3, backbone="timm:resnet18").eval()
    folded = copy.deepcopy(model)
    assert inference.fold_batchnorm(folded.backbone) > 0
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model.backbone(x), folded.backbone(x)
    assert all(torch.allclose(a[s], b[s], atol=1e-4, rtol=1e-4) for s in a)


def test_auto_tiles_only_images_above_the_threshold(monkeypatch):
    model = _built(fcnseg.fcn32s, backbone="timm:resnet18")
    seen: list[tuple[int, ...]] = []
    model.backbone.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape))
    monkeypatch.setattr(tiling, "AUTO_TILE", 320)
    monkeypatch.setattr(tiling, "AUTO_TILE_PIXELS", 500 * 500)
    field = output_field(model)
    exact = Predictor(model, precision="fp32")  # tile="auto" is the default
    # tiles at least twice the overlap (the receptive field): half of each tile is kept
    assert exact.tile == max(320, int(np.ceil(2 * field / 32)) * 32)
    assert exact.overlap == int(np.ceil(field))
    predictor = Predictor(model, precision="fp32", overlap=96)  # small tiles, for speed
    assert predictor.tile == 320
    g = torch.Generator().manual_seed(5)
    predictor(torch.randint(0, 256, (3, 480, 500), dtype=torch.uint8, generator=g))
    probes = [s for s in seen if max(s[-2:]) <= model.backbone.min_size]  # batch-norm folding
    assert len(seen) - len(probes) == 1  # 240,000 pixels: whole
    seen.clear()
    labels = predictor(torch.randint(0, 256, (3, 500, 520), dtype=torch.uint8, generator=g))
    assert labels.shape == (500, 520)
    assert len(seen) == 4 and max(max(s[-2:]) for s in seen) <= 320


def test_tta_averages_probabilities_over_the_flipped_view() -> None:
    from fcnseg.models.tta import tta_scores

    torch.manual_seed(0)
    model = fcnseg.fcn8s(num_classes=3, backbone="timm:test_resnet").eval()
    for name, p in model.named_parameters():
        if name.startswith("score"):
            torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(1, 3, 37, 50)
    with torch.no_grad():
        got = tta_scores(model, x, scales=(1.0,), parts=[slice(0, 3)])
        by_hand = (model(x).softmax(1) + model(x.flip(-1)).softmax(1).flip(-1)) / 2
    assert torch.allclose(got.exp(), by_hand, atol=1e-6)


def test_predictor_and_evaluate_apply_the_same_tta(tmp_path) -> None:
    from fcnseg.data import build_dataset, make_synthetic
    from fcnseg.evaluation import evaluate
    from fcnseg.evaluation.metrics import ConfusionMatrix

    torch.manual_seed(0)
    model = fcnseg.fcn8s(num_classes=6, backbone="timm:test_resnet").eval()
    for name, p in model.named_parameters():
        if name.startswith("score") and name.endswith("weight"):
            torch.nn.init.normal_(p, std=1.0)
    dataset = build_dataset("synthetic", make_synthetic(tmp_path, n_train=1, n_val=2), "val")
    predictor = fcnseg.Predictor(model, precision="fp32", tta=True)
    matrix = ConfusionMatrix(6)
    for image, mask in dataset:
        matrix.update(predictor(image).long(), mask)
    result = evaluate(model, dataset, tta=True)
    assert result["tta"] == [0.75, 1.0, 1.25]
    # Resizing raw or normalised images differs only by rounding: near-ties may flip.
    differ = (matrix.matrix - torch.tensor(result["confusion"])).abs().sum().item()
    assert differ <= 2e-3 * matrix.matrix.sum().item()
    plain = evaluate(model, dataset)
    assert plain["confusion"] != result["confusion"]  # the views change some pixels


@pytest.mark.parametrize("tta", [False, True])
def test_a_threshold_makes_the_masks_of_the_probabilities_it_cuts(tta) -> None:
    model = _scored(fcnseg.fcn8s(num_classes=2, backbone="timm:test_resnet"), std=0.5)
    image = torch.randint(0, 256, (3, 45, 61), generator=torch.Generator().manual_seed(2)).byte()
    plain = Predictor(model, backend="torch", precision="fp32", tta=tta)
    foreground = plain.probabilities(image)[1]
    for threshold in (0.2, 0.5, 0.8):
        cut = Predictor(model, backend="torch", precision="fp32", tta=tta, threshold=threshold)
        mask = cut(image)
        assert mask.dtype == torch.uint8 and set(mask.unique().tolist()) <= {0, 1}
        # The same probabilities, computed in another call: equal up to float rounding, so
        # only pixels within 1e-5 of the threshold may go either way.
        near = (foreground - threshold).abs() < 1e-5
        assert torch.equal(mask.bool()[~near], (foreground >= threshold)[~near])
    masks = [Predictor(model, backend="torch", tta=tta, threshold=t)(image) for t in (0.2, 0.8)]
    assert masks[0].sum() > masks[1].sum()  # a lower threshold takes more foreground


def test_a_threshold_needs_two_classes_and_a_probability() -> None:
    three = _scored(fcnseg.fcn32s(num_classes=3, backbone="timm:test_resnet"))
    with pytest.raises(ConfigError, match="needs a two-class model, not one of 3 classes"):
        Predictor(three, threshold=0.4)
    heads = fcnseg.fcn32s(num_classes={"sem": 3, "geo": 2}, backbone="timm:test_resnet")
    with pytest.raises(ConfigError, match="needs a two-class model, not one of 5 classes"):
        Predictor(heads.eval(), threshold=0.4)  # a two-class head among others is no such model
    two = _scored(fcnseg.fcn32s(num_classes=2, backbone="timm:test_resnet"))
    with pytest.raises(ConfigError, match="strictly between 0 and 1, not 1.5"):
        Predictor(two, threshold=1.5)


def test_a_magnified_model_scores_the_enlarged_image_everywhere(tmp_path) -> None:
    """A working scale (``meta.magnify``) enlarges each image before the net and resizes the
    probabilities back: evaluation, the predictor and a saved model file all do so."""
    import torch.nn.functional as F

    from fcnseg.data import build_dataset, make_synthetic
    from fcnseg.evaluation import evaluate
    from fcnseg.evaluation.metrics import ConfusionMatrix

    torch.manual_seed(0)
    model = fcnseg.fcn8s(num_classes=6, backbone="timm:test_resnet").eval()
    for name, p in model.named_parameters():
        if name.startswith("score") and name.endswith("weight"):
            torch.nn.init.normal_(p, std=1.0)
    model.meta = model.meta.with_(magnify=1.5)
    dataset = build_dataset("synthetic", make_synthetic(tmp_path, n_train=1, n_val=2), "val")
    by_hand = ConfusionMatrix(6)
    with torch.no_grad():
        for image, mask in dataset:
            x = model.normalization(image[None])
            h, w = x.shape[-2:]
            big = F.interpolate(x, size=(round(1.5 * h), round(1.5 * w)), mode="bilinear")
            probs = F.interpolate(model(big).softmax(1), size=(h, w), mode="bilinear")
            by_hand.update(probs.argmax(1), mask[None])
    result = evaluate(model, dataset)
    assert result["confusion"] == by_hand.matrix.tolist() and result["magnify"] == 1.5
    predicted = ConfusionMatrix(6)
    for image, mask in dataset:
        predicted.update(model.predict(image[None]), mask[None])
    assert predicted.matrix.tolist() == result["confusion"]
    model.meta = model.meta.with_(magnify=1.0)
    assert evaluate(model, dataset)["confusion"] != result["confusion"]
    model.meta = model.meta.with_(magnify=1.5)
    path = tmp_path / "m.safetensors"
    fcnseg.save(model, path)
    predictor = fcnseg.Predictor(fcnseg.load(path), backend="torch", precision="fp32")
    assert predictor.meta.magnify == 1.5
    matrix = ConfusionMatrix(6)
    for image, mask in dataset:
        labels = predictor(image)
        assert labels.shape == mask.shape
        matrix.update(labels.long(), mask)
    # Resizing raw or normalised images differs only by rounding: near-ties may flip.
    differ = (matrix.matrix - by_hand.matrix).abs().sum().item()
    assert differ <= 2e-3 * matrix.matrix.sum().item()
    # A working scale given to the predictor stands in for the file's.
    model.meta = model.meta.with_(magnify=1.0)
    told = fcnseg.Predictor(model, backend="torch", precision="fp32", magnify=1.5)
    for image, _ in dataset:
        assert torch.equal(told(image), predictor(image))
    with pytest.raises(ConfigError, match="magnify must lie in 1–4, not 0.5"):
        fcnseg.Predictor(model, backend="torch", precision="fp32", magnify=0.5)


def test_views_multiply_the_tta_scales_by_the_working_scale() -> None:
    from fcnseg.models.tta import views

    assert views(None, 1.0) is None
    assert views(None, 1.5) == ((1.5,), False)
    assert views((0.75, 1.0), 2.0) == ((1.5, 2.0), True)
    assert views((1.0,), 1.0) == ((1.0,), True)
