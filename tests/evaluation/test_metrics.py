"""ConfusionMatrix and the paper's §5 scores, checked against hand-computed numbers."""

import math

import pytest
import torch
from PIL import Image

from fcnseg.evaluation.metrics import (
    ConfusionMatrix,
    RocHistogram,
    binary_scores,
    format_table,
    plot_confusion,
)

# Four classes. Ground truth holds 0 and 1; class 2 is predicted but never true; class 3
# appears nowhere that counts. Pixel 7 carries the ignore label, pixel 8 an out-of-range one.
TARGET = torch.tensor([[0, 0, 0, 1, 1], [1, 1, 255, 7, 0]])
PRED = torch.tensor([[0, 0, 1, 1, 1], [2, 1, 3, 3, 2]])
# (true, predicted) pairs counted: (0,0)×2 (0,1) (0,2) (1,1)×3 (1,2).
EXPECTED = [[2, 1, 1, 0], [0, 3, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


def example() -> ConfusionMatrix:
    cm = ConfusionMatrix(4)
    cm.update(PRED, TARGET)
    return cm


def test_matrix_skips_ignore_and_out_of_range_labels():
    cm = example()
    assert cm.matrix.dtype == torch.int64
    assert cm.matrix.tolist() == EXPECTED


def test_scores_match_hand_computation():
    s = example().scores()
    # t = (4, 4, 0, 0), predicted = (2, 4, 2, 0), correct = (2, 3, 0, 0).
    assert s["pixel_acc"] == pytest.approx(5 / 8)
    assert s["mean_acc"] == pytest.approx((2 / 4 + 3 / 4) / 2)
    # IU: 2/(4+2-2), 3/(4+4-3), 0/(0+2-0) for the predicted-only class, class 3 left out.
    assert s["mean_iu"] == pytest.approx((0.5 + 0.6 + 0.0) / 3)
    assert s["fw_iu"] == pytest.approx((4 * 0.5 + 4 * 0.6) / 8)
    assert s["per_class_iu"][:3] == pytest.approx([0.5, 0.6, 0.0])
    assert math.isnan(s["per_class_iu"][3])
    assert s["per_class_acc"][:2] == pytest.approx([0.5, 0.75])
    assert all(math.isnan(v) for v in s["per_class_acc"][2:])
    assert all(isinstance(s[k], float) for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu"))


def test_ignore_index_inside_the_class_range_is_skipped():
    cm = ConfusionMatrix(3, ignore_index=0)
    cm.update(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 0, 2]))
    assert cm.matrix.tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_empty_matrix_scores_are_nan():
    s = ConfusionMatrix(2).scores()
    assert all(math.isnan(s[k]) for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu"))


def test_accumulating_batches_equals_one_update_over_all():
    g = torch.Generator().manual_seed(0)
    preds = [torch.randint(0, 5, (2, 7, 9), generator=g) for _ in range(3)]
    targets = [torch.randint(0, 6, (2, 7, 9), generator=g) for _ in range(3)]  # 5 = out of range
    split, whole = ConfusionMatrix(5), ConfusionMatrix(5)
    for p, t in zip(preds, targets, strict=True):
        split.update(p, t)
    whole.update(torch.cat(preds), torch.cat(targets))
    assert torch.equal(split.matrix, whole.matrix)
    assert int(split.matrix.sum()) == int((torch.cat(targets) < 5).sum())
    split.reset()
    assert int(split.matrix.sum()) == 0


def test_logits_are_reduced_by_argmax_over_channels():
    pred = PRED.unsqueeze(0)  # 1×2×5
    logits = torch.nn.functional.one_hot(pred, 4).permute(0, 3, 1, 2).float() * 3 - 1
    cm = ConfusionMatrix(4)
    cm.update(logits, TARGET.unsqueeze(0))
    assert cm.matrix.tolist() == EXPECTED


def test_merge_and_iadd_add_counts():
    a, b = example(), example()
    a.merge(b)
    assert a.matrix.tolist() == [[2 * v for v in row] for row in EXPECTED]
    a += b
    assert a.matrix.tolist() == [[3 * v for v in row] for row in EXPECTED]
    with pytest.raises(ValueError, match="3-class"):
        a.merge(ConfusionMatrix(3))


def test_bad_inputs_are_refused():
    cm = ConfusionMatrix(4)
    with pytest.raises(ValueError, match="shape"):
        cm.update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="outside"):
        cm.update(torch.tensor([4]), torch.tensor([0]))


def test_format_table():
    table = format_table(example().scores(), ["bg", "cat", "dog", "emu"])
    assert table.splitlines() == [
        "pixel acc.   62.50",
        "mean acc.    62.50",
        "mean IU      36.67",
        "f.w. IU      55.00",
        "",
        "class           IU    acc.   prec.      F1",
        "bg           50.00   50.00  100.00   66.67",  # F1 = 2·2 / (4 true + 2 predicted)
        "cat          60.00   75.00   75.00   75.00",
        "dog           0.00     n/a    0.00    0.00",  # predicted twice, never right
        "emu            n/a     n/a     n/a     n/a",
    ]


def test_plot_confusion_writes_png(tmp_path):
    path = plot_confusion(example().matrix, ["bg", "cat", "dog", "emu"], tmp_path / "cm.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
        # figsize (2.5 + 0.45·4 + 1.5, 2.5 + 0.45·4) inches at 100 dpi.
        assert image.size == (580, 430)


def test_per_class_precision_recall_f1_are_scikit_learns() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (4000,), generator=generator)
    pred = torch.where(
        torch.rand(4000, generator=generator) < 0.6,
        target,
        torch.randint(0, 5, (4000,), generator=generator),
    )
    cm = ConfusionMatrix(5, ignore_index=None)
    cm.update(pred, target)
    scores = cm.scores()
    p, r, f, _ = metrics.precision_recall_fscore_support(target, pred, labels=range(5))
    assert scores["per_class_precision"] == pytest.approx(p.tolist(), rel=1e-12)
    assert scores["per_class_acc"] == pytest.approx(r.tolist(), rel=1e-12)
    assert scores["per_class_f1"] == pytest.approx(f.tolist(), rel=1e-12)


def test_binary_scores_and_pooled_auc_are_scikit_learns() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    generator = torch.Generator().manual_seed(1)
    target = (torch.rand(50_000, generator=generator) < 0.1).long()  # a thin foreground
    probability = (torch.rand(50_000, generator=generator) + 0.6 * target).clamp(max=1) / 1.2
    target[:100] = 255  # ignored pixels count nowhere
    kept = target != 255
    cm = ConfusionMatrix(2)
    cm.update((probability >= 0.5).long(), target)
    roc = RocHistogram()
    for part in range(5):  # pooled over batches as over a set's images
        roc.update(probability[part::5], target[part::5])
    scores = binary_scores(cm, roc)
    truth, pred = target[kept].numpy(), (probability[kept] >= 0.5).numpy()
    assert scores["f1"] == pytest.approx(metrics.f1_score(truth, pred), rel=1e-12)
    assert scores["sensitivity"] == pytest.approx(metrics.recall_score(truth, pred), rel=1e-12)
    assert scores["specificity"] == pytest.approx(
        metrics.recall_score(truth, pred, pos_label=0), rel=1e-12
    )
    assert scores["accuracy"] == pytest.approx(metrics.accuracy_score(truth, pred), rel=1e-12)
    # Pairs of pixels sharing one of the 65536 bins count as ties: at most ~1/65536 of them.
    expected = metrics.roc_auc_score(truth, probability[kept].numpy())
    assert scores["auc"] == pytest.approx(expected, abs=1e-4)
