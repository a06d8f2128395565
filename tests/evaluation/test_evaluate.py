"""Evaluation (§5): full-resolution scores, padding that never counts, the boundary band."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fcnseg.data import build_dataset, make_synthetic
from fcnseg.errors import FcnsegError
from fcnseg.evaluation import boundary_band, evaluate, write_json
from fcnseg.models import build_fcn


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    root = make_synthetic(tmp_path_factory.mktemp("data"), n_train=1, n_val=3, sizes=(41, 53))
    return build_dataset("synthetic", root, "val")


def _background_only():
    """A net that scores class 0 highest everywhere (zero weights, one bias)."""
    model = build_fcn("fcn32s", num_classes=6, backbone="timm:test_resnet").eval()
    with torch.no_grad():
        model.score_fr.bias[0] = 1.0
    return model


def test_scores_of_a_known_prediction_at_full_resolution(val) -> None:
    truth = torch.zeros(6, dtype=torch.long)
    for _, mask in val:
        truth += torch.bincount(mask[mask != 255], minlength=6)
    for batch_size in (1, 3):  # padded batches: the padding must not count
        result = evaluate(_background_only(), val, batch_size=batch_size, device="cpu")
        matrix = torch.tensor(result["confusion"])
        assert torch.equal(matrix[:, 0], truth) and matrix[:, 1:].sum() == 0
        background = (truth[0] / truth.sum()).item()
        assert result["pixel_acc"] == pytest.approx(background)
        # IU of background = n00 / all pixels; every other class present scores 0.
        present = int((truth > 0).sum())
        assert result["mean_iu"] == pytest.approx(background / present)
        assert result["mean_acc"] == pytest.approx(1 / present)
        assert result["images"] == 3 and result["classes"] == val.classes


def test_padded_batches_predict_as_single_images(val) -> None:
    torch.manual_seed(0)
    model = build_fcn("fcn8s", num_classes=6, backbone="timm:test_resnet").eval()
    for p in model.parameters():
        p.data.normal_(0, 0.1)
    one = evaluate(model, val, batch_size=1, device="cpu")["confusion"]
    padded = evaluate(model, val, batch_size=3, device="cpu")["confusion"]
    total = sum(map(sum, one))
    differing = sum(
        abs(a - b) for ra, rb in zip(one, padded, strict=True) for a, b in zip(ra, rb, strict=True)
    )
    assert sum(map(sum, padded)) == total and differing <= 0.02 * total


def test_boundary_band_by_hand() -> None:
    target = torch.zeros(1, 7, 8, dtype=torch.long)
    target[:, :, 4:] = 2  # one vertical edge between columns 3 and 4
    assert boundary_band(target, 0)[0].nonzero()[:, 1].unique().tolist() == [3, 4]
    assert boundary_band(target, 2)[0].nonzero()[:, 1].unique().tolist() == [1, 2, 3, 4, 5, 6]
    assert boundary_band(target, 2)[0][:, 1:7].all()  # in every row
    assert not boundary_band(torch.zeros(1, 5, 5, dtype=torch.long), 3).any()


def test_boundary_scores_count_only_the_band(val) -> None:
    result = evaluate(_background_only(), val, device="cpu", boundary=1)
    band = result["boundary"]
    assert band["width"] == 1
    # Objects sit on background: near edges the share of background is lower than overall.
    assert band["pixel_acc"] < result["pixel_acc"]


def test_another_class_count_is_a_clear_error(val) -> None:
    model = build_fcn("fcn32s", num_classes=4, backbone="timm:test_resnet")
    with pytest.raises(FcnsegError, match="scores 4 classes but the dataset has 6"):
        evaluate(model, val, device="cpu")


def test_json_names_classes_and_writes_nan_as_null(val, tmp_path: Path) -> None:
    result = evaluate(_background_only(), val, device="cpu")
    result["per_class_acc"][5] = float("nan")  # as for a class absent from the ground truth
    path = tmp_path / "scores.json"
    write_json(result, path)
    saved = json.loads(path.read_text())
    assert [c["class"] for c in saved["per_class"]] == val.classes
    assert saved["mean_iu"] == pytest.approx(result["mean_iu"])
    assert saved["per_class"][5]["acc"] is None and "NaN" not in path.read_text()
    assert saved["confusion"] == result["confusion"]


def test_two_classes_add_the_foregrounds_scores_at_a_threshold(tmp_path) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "val" / "images").mkdir(parents=True, exist_ok=True)
        (tmp_path / "val" / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(
            tmp_path / "val" / "images" / f"{name}.png"
        )
        Image.fromarray((rng.random((30, 40)) < 0.2).astype(np.uint8)).save(
            tmp_path / "val" / "masks" / f"{name}.png"
        )
    dataset = build_dataset("folder", tmp_path, "val", num_classes=2)
    torch.manual_seed(0)
    model = build_fcn("fcn32s", num_classes=2, backbone="timm:test_resnet").eval()
    torch.nn.init.normal_(model.score_fr.weight, std=0.5)
    result = evaluate(model, dataset, threshold=0.3)
    # The same scores by hand, from the model's foreground probabilities.
    tp = fp = fn = tn = 0
    for image, mask in dataset:
        with torch.no_grad():
            fg = model(model.normalization(image[None])).softmax(1)[0, 1] >= 0.3
        tp += int((fg & (mask == 1)).sum())
        fp += int((fg & (mask == 0)).sum())
        fn += int((~fg & (mask == 1)).sum())
        tn += int((~fg & (mask == 0)).sum())
    binary = result["binary"]
    assert binary["threshold"] == 0.3
    assert binary["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-12)
    assert binary["sensitivity"] == pytest.approx(tp / (tp + fn), rel=1e-12)
    assert binary["specificity"] == pytest.approx(tn / (tn + fp), rel=1e-12)
    assert 0 <= binary["auc"] <= 1
    with pytest.raises(FcnsegError, match="threshold needs a two-class model"):
        evaluate(
            build_fcn("fcn32s", num_classes=3, backbone="timm:test_resnet"),
            build_dataset("folder", tmp_path, "val", num_classes=3),
            threshold=0.5,
        )
