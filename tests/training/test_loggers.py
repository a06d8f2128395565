"""--logger tensorboard: the epoch's scores, per-class IU, images and confusion matrix in
TensorBoard's own format, read back with TensorBoard's reader."""

from __future__ import annotations

import json

import pytest

from fcnseg.data import make_synthetic
from fcnseg.errors import ConfigError
from fcnseg.training import train
from fcnseg.training.config import TrainConfig

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="pip install 'fcnseg[tensorboard]'",
)


def test_tensorboard_logs_what_metrics_jsonl_says(tmp_path) -> None:
    data = make_synthetic(tmp_path / "data", n_train=4, n_val=2, sizes=(48, 48))
    run = tmp_path / "run"
    settings = dict(dataset="synthetic", root=str(data), backbone="timm:test_resnet")
    settings.update(model="fcn16s", epochs=2, batch_size=2, crop=(32, 32), workers=0)
    train(TrainConfig(**settings, device="cpu", out=str(run), logger="tensorboard"))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    events = event_accumulator.EventAccumulator(
        str(run / "tensorboard"), size_guidance={event_accumulator.IMAGES: 0}
    )
    events.Reload()
    tags = events.Tags()
    keys = {"train/loss": "train_loss", "train/lr": "lr"}
    keys.update({f"val/{k}": k for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")})
    for tag, key in keys.items():
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        expected = [(r["epoch"], r[key]) for r in records]
        assert [s for s, _ in logged] == [s for s, _ in expected]
        assert [v for _, v in logged] == pytest.approx([v for _, v in expected], rel=1e-6)
    assert any(tag.startswith("val_iu/") for tag in tags["scalars"])
    assert "val/images" in tags["images"] and "val/confusion" in tags["images"]
    image = events.Images("val/images")[-1]
    assert (image.height, image.width) == (2 * 48, 3 * 48)  # rows of image | truth | prediction


def test_unknown_logger_is_one_line(tmp_path) -> None:
    with pytest.raises(ConfigError, match="--logger .*must be one of csv, tensorboard"):
        TrainConfig(dataset="synthetic", root=str(tmp_path), logger="wandb").resolved()
