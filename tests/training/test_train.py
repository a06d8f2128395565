"""Training (§3.4, §4.3): the loss as defined, the optimiser recipes, staged initialisation,
exact resumption, a clear stop on divergence, a compiler failing mid-run. Tiny data and timm's
test ResNet throughout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file
from torch import nn

import fcnseg
from fcnseg import load as load_model
from fcnseg.data import make_synthetic
from fcnseg.errors import FcnsegError
from fcnseg.files.checkpoint import read_checkpoint as read_state
from fcnseg.models import build_fcn
from fcnseg.training import Trainer, fastest
from fcnseg.training import train as run_training
from fcnseg.training.config import TrainConfig
from fcnseg.training.distributed import EpochSampler
from fcnseg.training.loss import SegmentationLoss
from fcnseg.training.optim import build_optimizer, lr_factor, param_groups

BACKBONE = "timm:test_resnet"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("data"), n_train=6, n_val=2, sizes=(41, 48))


def config(data: Path, out: Path, **changes) -> TrainConfig:
    settings = dict(
        dataset="synthetic",
        root=str(data),
        backbone=BACKBONE,
        model="fcn8s",
        epochs=1,
        batch_size=2,
        crop=(32, 32),
        workers=0,
        device="cpu",
        out=str(out),
        seed=1,
    )
    return TrainConfig(**{**settings, **changes})


@pytest.fixture(autouse=True)
def keep_global_state():
    deterministic = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        yield
    torch.use_deterministic_algorithms(deterministic)


# ---------------------------------------------------------------- the loss


def _logits_and_target(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 5, 6, generator=g)
    target = torch.randint(0, 3, (2, 5, 6), generator=g)
    target[0, 0, :3] = 255
    return logits, target


def test_mean_and_sum_are_pytorch_cross_entropy_with_ignore() -> None:
    logits, target = _logits_and_target()
    w = torch.tensor([0.5, 2.0, 1.0])
    for weight in (None, w):
        mean = SegmentationLoss(ignore_index=255, reduction="mean", weight=weight)
        total = SegmentationLoss(ignore_index=255, reduction="sum", weight=weight)
        torch.testing.assert_close(
            mean(logits, target), F.cross_entropy(logits, target, weight=weight, ignore_index=255)
        )
        torch.testing.assert_close(
            total(logits, target),
            F.cross_entropy(logits, target, weight=weight, ignore_index=255, reduction="sum"),
        )


def test_class_weights_scale_each_pixel_and_normalise_the_mean() -> None:
    logits, target = _logits_and_target()
    weight = torch.tensor([0.5, 2.0, 1.0])
    per_pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none")
    counted = target != 255
    w = weight[torch.where(counted, target, 0)] * counted
    loss = SegmentationLoss(ignore_index=255, reduction="mean", weight=weight)
    assert loss(logits, target).item() == pytest.approx(
        float((w * per_pixel).sum() / w.sum()), rel=1e-6
    )


def test_loss_sampling_keeps_the_drawn_pixels_and_stays_on_scale() -> None:
    # §3.4: each pixel's term kept with probability p. The sum is divided by p (unbiased for
    # the whole-image sum); the mean runs over the kept pixels.
    logits, target = _logits_and_target()
    p = 0.5
    per_pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none")
    kept = torch.rand(target.shape, generator=torch.Generator().manual_seed(7)) < p
    kept &= target != 255
    for reduction, expected in (
        ("sum", per_pixel[kept].sum() / p),
        ("mean", per_pixel[kept].mean()),
    ):
        loss = SegmentationLoss(ignore_index=255, reduction=reduction, sampling=p)
        value = loss(logits, target, torch.Generator().manual_seed(7))
        assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    # Unbiased: over many draws the sampled sum averages to the full sum.
    loss = SegmentationLoss(ignore_index=255, reduction="sum", sampling=p)
    draws = [loss(logits, target, torch.Generator().manual_seed(s)).item() for s in range(400)]
    full = per_pixel[target != 255].sum().item()
    assert np.mean(draws) == pytest.approx(full, rel=0.05)


def test_an_all_ignored_batch_has_zero_loss_and_gradient() -> None:
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    target = torch.full((1, 4, 4), 255)
    loss = SegmentationLoss(ignore_index=255, reduction="mean")(logits, target)
    loss.backward()
    assert loss.item() == 0 and logits.grad.abs().sum() == 0


# ---------------------------------------------------------------- optimiser and schedule


def test_paper_recipe_groups_biases_at_twice_the_rate_without_decay() -> None:
    model = build_fcn("fcn8s", num_classes=3, backbone=BACKBONE)
    cfg = TrainConfig(dataset="x", root="y", recipe="paper").resolved()
    assert (cfg.optimizer, cfg.momentum, cfg.lr, cfg.weight_decay, cfg.batch_size) == (
        "sgd",
        0.99,
        1e-10,
        5e-4,
        1,
    )
    assert (
        TrainConfig(dataset="x", root="y", recipe="paper", reduction="mean").resolved().lr == 1e-4
    )
    groups = {g["name"]: g for g in param_groups(model, cfg)}
    assert groups["head.bias"]["lr"] == 2 * cfg.lr and groups["head.bias"]["weight_decay"] == 0
    assert groups["head.weight"]["lr"] == cfg.lr
    assert groups["head.weight"]["weight_decay"] == 5e-4
    assert groups["backbone.norm"]["weight_decay"] == 0
    optimizer = build_optimizer(model, cfg)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.99
    # Every trainable parameter is in exactly one group.
    ids = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())


def test_modern_recipe_slows_a_pretrained_backbone() -> None:
    model = build_fcn("fcn32s", num_classes=3, backbone=BACKBONE)
    cfg = TrainConfig(dataset="x", root="y", pretrained_backbone=True).resolved()
    groups = {g["name"]: g for g in param_groups(model, cfg)}
    assert groups["backbone.weight"]["lr"] == pytest.approx(0.1 * groups["head.weight"]["lr"])
    assert isinstance(build_optimizer(model, cfg), torch.optim.AdamW)
    scratch = TrainConfig(dataset="x", root="y").resolved()
    assert scratch.backbone_lr_mult == 1.0


def test_quarter_turns_with_an_oblong_crop_are_refused_naming_the_fix() -> None:
    with pytest.raises(FcnsegError, match=r"--rot90: .*square --crop.*--crop 320 320"):
        TrainConfig(dataset="x", root="y", rot90=True, crop=(240, 320)).resolved()
    assert TrainConfig(dataset="x", root="y", rot90=True, crop=(64, 64)).resolved().rot90


def test_poly_schedule_with_warmup() -> None:
    cfg = TrainConfig(dataset="x", root="y", warmup_steps=4).resolved()
    factor = lr_factor(cfg, total_steps=100)
    assert factor(0) == pytest.approx(0.25 * (1.0) ** 0.9)
    assert factor(3) == pytest.approx(1.0 * (1 - 3 / 100) ** 0.9)
    assert factor(50) == pytest.approx(0.5**0.9)
    assert factor(100) == 0.0
    paper = lr_factor(TrainConfig(dataset="x", root="y", recipe="paper").resolved(), 100)
    assert {paper(s) for s in (0, 50, 99)} == {1.0}


# ---------------------------------------------------------------- training runs


def _loss_on(model: fcnseg.FCN, dataset) -> float:
    loss = SegmentationLoss(ignore_index=255)
    with torch.no_grad():
        return float(
            np.mean(
                [
                    loss(model(model.normalization(image[None])), mask[None]).item()
                    for image, mask in dataset
                ]
            )
        )


def test_a_few_steps_reduce_the_loss_and_write_the_run(data, tmp_path) -> None:
    from fcnseg.data import build_dataset

    run = tmp_path / "run"
    result = run_training(config(data, run, model="fcn32s", epochs=5, lr=1e-2, scale=(1.0, 1.0)))
    assert result["steps"] == 15  # 6 images in batches of 2, 5 epochs
    # The score layer starts at zero (§4.2): the untrained loss is exactly ln 6 everywhere.
    images = build_dataset("synthetic", data, "train")
    trained = load_model(run / "last.safetensors").eval()
    untrained = build_fcn("fcn32s", num_classes=6, backbone=BACKBONE).eval()
    assert _loss_on(untrained, images) == pytest.approx(np.log(6), rel=1e-5)
    assert _loss_on(trained, images) < 0.75 * np.log(6)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records == result["history"] and [r["epoch"] for r in records] == [1, 2, 3, 4, 5]
    assert set(records[0]) >= {
        "epoch",
        "step",
        "train_loss",
        "lr",
        "pixel_acc",
        "mean_acc",
        "mean_iu",
        "fw_iu",
        "time",
    }
    best = max(records, key=lambda r: r["mean_iu"])
    assert result["best"]["epoch"] == best["epoch"]
    model = fcnseg.load(run / "best.safetensors")
    assert model.meta.classes[0] == "background" and model.meta.ignore_index == 255
    assert model.meta.extra["scores"]["mean_iu"] == best["mean_iu"]
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["batch_size"] == 2 and saved["optimizer"] == "adamw"
    assert read_state(run / "last.safetensors").info["state"]["step"] == 15


def test_images_kept_decoded_train_to_the_same_weights(data, tmp_path, capsys) -> None:
    """Kept in memory or read from the files, the batches (augmentation included) are the same:
    so are the trained weights, bit for bit, on one machine."""
    weights = {}
    for keep, workers in (("on", 2), ("off", 0)):
        run = tmp_path / keep
        run_training(config(data, run, epochs=2, keep_decoded=keep, workers=workers))
        weights[keep] = load_file(str(run / "last.safetensors"))
    assert "6 training images decoded once and kept in memory" in capsys.readouterr().out
    assert weights["on"].keys() == weights["off"].keys()
    for name, tensor in weights["on"].items():
        assert torch.equal(tensor, weights["off"][name]), name


def test_freeze_backbone_trains_only_the_new_layers(data, tmp_path) -> None:
    torch.manual_seed(1)
    before = build_fcn("fcn8s", num_classes=6, backbone=BACKBONE).backbone.state_dict()
    run = tmp_path / "run"
    run_training(config(data, run, freeze_backbone=True, lr=1e-2))
    after = fcnseg.load(run / "best.safetensors")
    for name, tensor in after.backbone.state_dict().items():
        assert torch.equal(tensor, before[name]), name  # weights and batch-norm statistics
    assert after.score_fr.weight.abs().sum() > 0


def test_epoch_sampler_skips_exactly_the_samples_seen() -> None:
    data = list(range(10))
    whole = EpochSampler(data, world=1, rank=0, seed=3)
    whole.set_epoch(2)
    order = list(whole)
    assert sorted(i for _, i in order) == data and {e for e, _ in order} == {2}
    resumed = EpochSampler(data, world=1, rank=0, seed=3)
    resumed.set_epoch(2)
    resumed.skip = 4
    assert list(resumed) == order[4:] and len(resumed) == 6
    shards = [list(EpochSampler(data, world=2, rank=r, seed=3)) for r in (0, 1)]
    assert sorted(i for shard in shards for _, i in shard) == data


def test_resume_gives_the_weights_of_the_uninterrupted_run(data, tmp_path, monkeypatch) -> None:
    # 3 batches an epoch, 2 batches a step: 2 steps an epoch, the second of one batch only;
    # half the pixels' losses sampled.
    settings = dict(
        epochs=2,
        accumulate=2,
        loss_sampling=0.5,
        checkpoint_every=1,
        deterministic=True,
        lr=1e-2,
        ema=0.9,
    )
    whole = tmp_path / "whole"
    run_training(config(data, whole, **settings))

    cut = tmp_path / "cut"
    real = Trainer.checkpoint

    def killed_after_step_3(self) -> None:
        real(self)
        if self.state.step == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "checkpoint", killed_after_step_3)
    with pytest.raises(KeyboardInterrupt):
        run_training(config(data, cut, **settings))
    monkeypatch.setattr(Trainer, "checkpoint", real)
    state = read_state(cut / "last.safetensors")
    assert (
        state.info["state"]["epoch"],
        state.info["state"]["step_in_epoch"],
        state.info["state"]["step"],
    ) == (1, 1, 3)

    run_training(config(data, cut, resume=True, **settings))
    a, b = read_state(whole / "last.safetensors"), read_state(cut / "last.safetensors")
    assert a.info["state"]["step"] == b.info["state"]["step"] == 4
    for name, tensor in a.model.items():
        assert torch.equal(b.model[name], tensor), name
    assert a.average["n_averaged"].item() == 4 and a.average.keys() == b.average.keys()
    for name, tensor in a.average.items():
        assert torch.equal(b.average[name], tensor), name
    for index, entry in a.optimizer["state"].items():
        for key, value in entry.items():
            assert torch.equal(
                torch.as_tensor(b.optimizer["state"][index][key]), torch.as_tensor(value)
            ), (index, key)
    strip = [{k: v for k, v in h.items() if k != "time"} for h in a.info["state"]["history"]]
    assert [
        {k: v for k, v in h.items() if k != "time"} for h in b.info["state"]["history"]
    ] == strip


def test_a_non_finite_loss_stops_naming_the_step_and_keeps_the_checkpoint(
    data, tmp_path, monkeypatch
) -> None:
    calls = {"n": 0}
    real = SegmentationLoss.forward

    def nan_on_third_batch(self, logits, target, generator=None):
        calls["n"] += 1
        loss = real(self, logits, target, generator)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(SegmentationLoss, "forward", nan_on_third_batch)
    run = tmp_path / "run"
    with pytest.raises(FcnsegError) as caught:
        run_training(config(data, run, checkpoint_every=1))
    message = str(caught.value)
    assert message.startswith("step 3: the loss is nan; training stopped")
    assert f"{run / 'last.safetensors'} (step 2), is kept" in message
    assert "\n" not in message
    kept = read_state(run / "last.safetensors")
    assert kept.info["state"]["step"] == 2
    assert all(t.isfinite().all() for t in kept.model.values() if t.is_floating_point())


def test_bad_settings_are_one_line_errors(data, tmp_path) -> None:
    with pytest.raises(FcnsegError, match="loss_sampling"):
        run_training(config(data, tmp_path, loss_sampling=0.0))
    with pytest.raises(FcnsegError, match="3 given but the dataset has 6 classes"):
        run_training(config(data, tmp_path, class_weights="1,2,3"))
    with pytest.raises(FcnsegError, match="nothing to resume"):
        run_training(config(data, tmp_path / "new", resume=True))
    with pytest.raises(FcnsegError, match=r"--magnify \(magnify\): must lie in \[1.0, 4.0\]"):
        run_training(config(data, tmp_path, magnify=0.5))
    with pytest.raises(FcnsegError, match=r"^--inference-magnify \(inference_magnify\): must lie"):
        run_training(config(data, tmp_path, inference_magnify=5.0))
    with pytest.raises(FcnsegError, match=r"^--ema \(ema\): must lie in \(0, 1\), not 1.0$"):
        run_training(config(data, tmp_path, ema=1.0))


@pytest.mark.parametrize("inference", [None, 1.75])
def test_the_working_scale_enlarges_training_images_and_reaches_the_model_file(
    data, tmp_path, monkeypatch, inference
) -> None:
    from fcnseg.training import setup

    seen = []
    real = setup.train_transform
    monkeypatch.setattr(setup, "train_transform", lambda **kw: seen.append(kw) or real(**kw))
    settings = {"magnify": 1.5, "scale": (0.8, 1.2), "inference_magnify": inference}
    result = run_training(config(data, tmp_path, **settings))
    assert seen[0]["scale"] == pytest.approx((1.2, 1.8))
    model = fcnseg.load(tmp_path / "best.safetensors")
    # The file keeps the scale inference works at: --inference-magnify, else --magnify.
    assert model.meta.magnify == (inference or 1.5)
    # Validation scored the enlarged images, as evaluation does.
    from fcnseg.data import build_dataset
    from fcnseg.evaluation import evaluate

    scores = evaluate(model, build_dataset("synthetic", data, "val"))
    for metric in ("pixel_acc", "mean_iu"):
        assert scores[metric] == pytest.approx(result["best"][metric], abs=1e-9)


def test_the_moving_average_of_the_weights_is_what_validation_scores_and_best_keeps(
    data, tmp_path, monkeypatch
) -> None:
    from fcnseg.data import build_dataset
    from fcnseg.evaluation import evaluate
    from fcnseg.training import loop

    decay, weights = 0.5, []
    real = loop.update

    def update_and_record(run) -> None:
        real(run)
        weights.append({k: v.clone() for k, v in run.model.state_dict().items()})

    monkeypatch.setattr(loop, "update", update_and_record)
    result = run_training(config(data, tmp_path, ema=decay, lr=1e-2))
    # The average starts as the weights after the first step, then moves by 1 - decay a step.
    expected = {k: v.double() for k, v in weights[0].items() if v.is_floating_point()}
    for step in weights[1:]:
        for k in expected:
            expected[k] = decay * expected[k] + (1 - decay) * step[k].double()
    best = fcnseg.load(tmp_path / "best.safetensors")  # one epoch: the last is the best
    saved = best.state_dict()
    assert len(weights) == 3
    for k, value in expected.items():
        # float32 lerps, three of them: a few units in the last place of the largest weight.
        assert torch.allclose(saved[k].double(), value, rtol=1e-6, atol=1e-6), k
    assert any(not torch.equal(saved[k], weights[-1][k]) for k in expected)
    # Validation scored the average, as evaluating the saved model does.
    scores = evaluate(best, build_dataset("synthetic", data, "val"))
    for metric in ("pixel_acc", "mean_iu"):
        assert scores[metric] == pytest.approx(result["best"][metric], abs=1e-9)


def test_an_average_begun_on_resuming_starts_from_the_checkpoints_weights(data, tmp_path) -> None:
    run_training(config(data, tmp_path))
    first = read_state(tmp_path / "last.safetensors")
    assert first.average == {}
    run_training(config(data, tmp_path, resume=True, epochs=2, ema=0.5))
    state = read_state(tmp_path / "last.safetensors")
    # The average began at the checkpoint's weights and took in epoch 2's 3 steps.
    assert state.info["state"]["step"] == 6 and state.average["n_averaged"].item() == 3


def test_median_frequency_weights_reach_the_loss(data, tmp_path) -> None:
    cfg = config(data, tmp_path, class_weights="median-frequency").resolved()
    from fcnseg.data import build_dataset, median_frequency_weights
    from fcnseg.training.distributed import Processes

    trainer = Trainer(cfg, Processes("cpu"))
    expected = median_frequency_weights(build_dataset("synthetic", data, "train"))
    assert torch.equal(trainer.run.loss.weight, expected) and expected.unique().numel() > 1


def multiband_folder(root: Path, bands: int = 4) -> Path:
    """A folder tree of 16-bit multi-band .npy rasters whose last band marks the class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for i in range(n):
            mask = np.zeros((40, 44), np.uint8)
            mask[8:30, 10:36] = 1
            image = rng.integers(0, 3000, (40, 44, bands)).astype(np.uint16)
            image[..., -1][mask == 1] += 4000
            np.save(root / split / "images" / f"r{i}.npy", image)
            Image.fromarray(mask).save(root / split / "masks" / f"r{i}.png")
    (root / "classes.json").write_text('{"classes": ["ground", "field"]}')
    return root


def test_multiband_rasters_train_with_measured_statistics(tmp_path) -> None:
    from fcnseg.data import build_dataset, channel_stats
    from fcnseg.inference import Predictor

    root = multiband_folder(tmp_path / "data")
    cfg = config(root, tmp_path / "run", dataset="folder", in_channels=4, model="fcn32s")
    run_training(cfg)
    model = load_model(tmp_path / "run" / "best.safetensors")
    assert model.meta.in_channels == 4
    train_set = build_dataset("folder", root, "train", in_channels=4)
    images = [train_set.read_image(path) for path, _ in train_set.samples]
    # 16-bit bands: every channel standardised by its own statistics on the training images.
    mean, std = channel_stats(images, range(4))
    assert model.normalization.mean == pytest.approx(mean, rel=1e-12)
    assert model.normalization.std == pytest.approx(std, rel=1e-12)
    saved = model
    raster = np.load(root / "val" / "images" / "r0.npy")
    got = Predictor(saved, precision="fp32")(raster)
    expected = saved.eval().predict(
        torch.from_numpy(raster.astype(np.float32)).permute(2, 0, 1)[None]
    )
    # The predictor's prepared network (folded batch norm, channels-last) rounds differently:
    # only near-ties may differ.
    assert (got.long() == expected[0]).float().mean() >= 0.999
    with pytest.raises(FcnsegError, match="has 3 channels but the model takes 4"):
        Predictor(saved)(np.zeros((8, 8, 3), np.uint8))


def test_jitter_needs_rgb(tmp_path) -> None:
    root = multiband_folder(tmp_path / "data")
    cfg = config(root, tmp_path / "run", dataset="folder", in_channels=4, jitter=0.2)
    with pytest.raises(FcnsegError, match="--jitter changes colours and needs RGB"):
        run_training(cfg)


def test_two_headed_siftflow_trains_both_heads_and_scores_each(tmp_path) -> None:
    """The paper's SIFT Flow net (§5): one backbone, semantic and geometric heads, losses
    summed; validation and evaluation score each head on its own label set."""
    from fcnseg.data import build_dataset
    from fcnseg.evaluation import evaluate

    root = siftflow_fixture(tmp_path / "sf")
    cfg = config(root, tmp_path / "run", dataset="siftflow", labels="both", val_split="test")
    result = run_training(cfg)
    record = result["history"][-1]
    assert set(record["heads"]) == {"sem", "geo"}
    model = load_model(tmp_path / "run" / "best.safetensors")
    assert model.meta.heads == (("sem", 33), ("geo", 3))
    dataset = build_dataset("siftflow", root, "test", labels="both")
    scores = evaluate(model, dataset)
    for name in ("sem", "geo"):
        alone = evaluate(model.head(name), dataset.heads[name])
        assert scores["heads"][name]["confusion"] == alone["confusion"]
    assert scores["mean_iu"] == scores["heads"]["sem"]["mean_iu"]
    with pytest.raises(FcnsegError, match="--labels both"):
        evaluate(model, build_dataset("siftflow", root, "test"))


def siftflow_fixture(root: Path) -> Path:
    """SIFT Flow's released layout: 48×48 JPEGs, semantic and geometric .mat labels."""
    import scipy.io
    from PIL import Image

    folder = "spatial_envelope_256x256_static_8outdoorcategories"
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        names = [f"{split}_{i}" for i in range(n)]
        root.mkdir(parents=True, exist_ok=True)
        (root / f"{split}.txt").write_text("\n".join(names) + "\n")
        for name in names:
            semantic = np.full((48, 48), 28, np.int16)  # sky above
            semantic[24:] = 17  # mountain below
            geometric = np.ones((48, 48), np.int16)
            geometric[24:] = 3
            geometric[:2] = -1  # void
            image = np.where(semantic[..., None] == 28, 200, 60).astype(np.uint8)
            image = (image + rng.integers(0, 30, (48, 48, 3))).astype(np.uint8)
            (root / "Images" / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / "Images" / folder / f"{name}.jpg")
            for kind, labels in (("SemanticLabels", semantic), ("GeoLabels", geometric)):
                (root / kind / folder).mkdir(parents=True, exist_ok=True)
                scipy.io.savemat(root / kind / folder / f"{name}.mat", {"S": labels})
    return root


def test_a_sum_of_losses_trains(data, tmp_path) -> None:
    pytest.importorskip("segmentation_models_pytorch", reason="the losses extra")
    from fcnseg.training.loss import SumLoss
    from fcnseg.training.setup import build_run

    cfg = config(data, tmp_path / "run", loss="ce+dice", class_weights="median-frequency")
    result = run_training(cfg)
    assert np.isfinite(result["history"][-1]["train_loss"])
    run = build_run(cfg.resolved(), _one_process(), print)
    assert isinstance(run.loss, SumLoss) and run.loss.terms[1].class_weights is not None
    with pytest.raises(FcnsegError, match="--reduction mean"):
        run_training(config(data, tmp_path / "r2", loss="dice", recipe="paper"))


def _one_process():
    from fcnseg.training.distributed import Processes

    return Processes("cpu")


def test_repeat_passes_over_a_small_set_per_epoch_with_fresh_augmentation(data, tmp_path) -> None:
    from fcnseg.training.setup import build_run

    once = build_run(config(data, tmp_path / "a").resolved(), _one_process(), print)
    thrice = build_run(config(data, tmp_path / "b", repeat=3).resolved(), _one_process(), print)
    assert thrice.batches == 3 * once.batches and len(thrice.sampler) == 3 * len(once.sampler)
    items = thrice.loader.dataset
    n = len(thrice.train_set)
    # Sample 0 in the first and in the second pass: the same image, another random crop.
    first, second = items[(0, 0)], items[(0, n)]
    assert not torch.equal(first[0], second[0])


def test_validating_on_trained_images_is_said_before_the_first_step(data, tmp_path) -> None:
    from fcnseg.training.setup import build_run

    said: list[str] = []
    build_run(config(data, tmp_path / "a").resolved(), _one_process(), said.append)
    assert not [line for line in said if "trained on too" in line]
    build_run(
        config(data, tmp_path / "b", val_split="train").resolved(), _one_process(), said.append
    )
    assert (
        "note: 6 of the 6 validation images are trained on too (splits train and train): "
        "validation scores are a fit, not an estimate of new images"
    ) in said


def test_checkpointed_activations_give_the_same_step() -> None:
    """Recomputing the backbone's stages in the backward pass changes memory, not the
    gradients, and batch norm's running statistics move as far as in one plain step."""
    torch.manual_seed(0)
    plain = build_fcn("fcn8s", num_classes=3, backbone="timm:test_resnet").train()
    for name, p in plain.named_parameters():
        if name.startswith("score") and name.endswith("weight"):
            torch.nn.init.normal_(p, std=0.5)
    recomputed = build_fcn("fcn8s", num_classes=3, backbone="timm:test_resnet").train()
    recomputed.load_state_dict(plain.state_dict())
    recomputed.backbone.checkpointing = True
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    for model in (plain, recomputed):
        F.cross_entropy(model(x), y).backward()
    for (name, a), b in zip(plain.named_parameters(), recomputed.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-6), name
    for (name, a), b in zip(plain.named_buffers(), recomputed.buffers(), strict=True):
        if a.dtype.is_floating_point:
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), name
    recomputed.backbone.checkpointing = False
    momenta = [m.momentum for m in recomputed.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert momenta and momenta == pytest.approx([0.1] * len(momenta))


# ---------------------------------------------------------------- a compiler that fails


class Failing(nn.Module):
    """What a compiler bug looks like from the training loop: the first call raises."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("expected size 11==11, stride 1==90721 at dim=1")


def test_a_failing_compile_says_so_and_trains_on_eager_to_the_same_weights(
    monkeypatch, capsys, data: Path, tmp_path: Path
) -> None:
    run_training(config(data, tmp_path / "eager", compile="off"))
    monkeypatch.setattr(fastest.torch, "compile", lambda module, **_: Failing(module))
    run_training(config(data, tmp_path / "failed", compile="on"))
    log = capsys.readouterr().out
    assert (
        log.count("torch.compile failed") == 1
        and "torch.compile failed (expected size 11==11" in log
        and "on eager" in log
    )
    eager, failed = (load_file(tmp_path / run / "last.safetensors") for run in ("eager", "failed"))
    # Weights, batch-norm statistics and the optimiser's state alike.
    assert eager.keys() == failed.keys()
    assert all(torch.equal(eager[k], failed[k]) for k in eager)
