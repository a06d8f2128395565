"""--max-minutes: the epochs that fit in a time budget, planned from the run's own pace, with the
learning rate annealing to the last of them, kept across a resumption."""

from __future__ import annotations

import pytest

import fcnseg
from fcnseg.data import make_synthetic
from fcnseg.training import budget, loop
from fcnseg.training import train as run_training
from fcnseg.training.budget import epochs_that_fit, pace
from fcnseg.training.config import TrainConfig


def test_the_pace_leaves_out_the_first_epoch_once_later_ones_are_timed() -> None:
    assert pace([300.0]) == 300.0
    assert pace([300.0, 60.0, 62.0]) == 61.0
    assert pace([300.0], one_off=240.0) == 60.0  # the first epoch less its compiling
    # 1800 s: 422 spent, 1378 left at 61 s is 22 more (22.6 floored), 25 in all.
    assert epochs_that_fit(1800, [300.0, 60.0, 62.0], most=35) == 25
    assert epochs_that_fit(1800, [300.0, 60.0, 62.0], most=10) == 10
    # Past the budget: stop with the epochs done, never fewer.
    assert epochs_that_fit(100, [300.0], most=35) == 1
    assert epochs_that_fit(650, [300.0, 200.0, 200.0], most=35) == 3
    assert epochs_that_fit(60, [0.0, 0.0], most=35) == 35  # too short to time: no cut


def config(data, out, **changes) -> TrainConfig:
    settings = dict(
        dataset="synthetic",
        root=str(data),
        backbone="timm:test_resnet",
        model="fcn32s",
        epochs=4,
        batch_size=2,
        crop=(32, 32),
        device="cpu",
        compile="off",
        out=str(out),
        seed=1,
        lr=1e-2,
    )
    return TrainConfig(**{**settings, **changes})


def test_a_budget_cuts_the_epochs_and_the_schedule_anneals_to_the_last(
    tmp_path, monkeypatch, capsys
) -> None:
    data = make_synthetic(tmp_path / "data", n_train=4, n_val=2, sizes=(41, 48))
    monkeypatch.setattr(loop, "epochs_that_fit", lambda budget_s, times, most, one_off: 2)
    result = run_training(config(data, tmp_path / "run", max_minutes=30))
    history = result["history"]
    assert [h["epoch"] for h in history] == [1, 2] and result["steps"] == 4
    # Epoch 1 ends on the schedule drawn for 4 epochs of 2 steps, (1 - 2/8)^0.9; re-drawn for
    # 2 epochs, the factor reaches 0 at the last step.
    assert history[0]["lr"] == pytest.approx(1e-2 * 0.75**0.9)
    assert history[1]["lr"] == 0.0
    assert "--max-minutes 30: 2 of 4 epochs fit" in capsys.readouterr().out
    # The plan is in the checkpoint: resuming the finished run trains nothing more.
    again = run_training(config(data, tmp_path / "run", max_minutes=30, resume=True))
    assert again["steps"] == 4 and len(again["history"]) == 2
    # Resumed without the budget, the run takes its --epochs again, annealing to the last.
    monkeypatch.undo()
    longer = run_training(config(data, tmp_path / "run", resume=True))
    assert [h["epoch"] for h in longer["history"]] == [1, 2, 3, 4]
    assert longer["history"][-1]["lr"] == 0.0 and longer["history"][2]["lr"] > 0


def test_a_budget_already_spent_stops_after_the_first_epoch(tmp_path) -> None:
    data = make_synthetic(tmp_path / "data", n_train=4, n_val=2, sizes=(41, 48))
    result = run_training(config(data, tmp_path / "run", max_minutes=1e-6))
    assert len(result["history"]) == 1
    assert budget.epochs_that_fit(60e-6, [h["time"] for h in result["history"]], 4) == 1


def test_validation_every_n_epochs_and_always_the_last(tmp_path, capsys) -> None:
    data = make_synthetic(tmp_path / "data", n_train=4, n_val=2, sizes=(41, 48))
    result = run_training(config(data, tmp_path / "run", epochs=5, val_every=2))
    history = result["history"]
    assert [h["epoch"] for h in history if "mean_iu" in h] == [2, 4, 5]
    assert all(h.keys() >= {"train_loss", "lr", "time"} for h in history)
    assert result["best"]["epoch"] in (2, 4, 5)
    out = capsys.readouterr().out
    first = next(line for line in out.splitlines() if line.startswith("epoch 1/5"))
    assert "mean IU" not in first
    # The model file holds the best validated epoch, and says which.
    meta = fcnseg.files.read_metadata(tmp_path / "run" / "best.safetensors")
    assert meta.extra["epoch"] == result["best"]["epoch"]


def test_a_budget_ending_the_run_between_validations_scores_the_last_epoch(
    tmp_path, monkeypatch
) -> None:
    data = make_synthetic(tmp_path / "data", n_train=4, n_val=2, sizes=(41, 48))
    monkeypatch.setattr(loop, "epochs_that_fit", lambda budget_s, times, most, one_off: 3)
    result = run_training(config(data, tmp_path / "run", val_every=2, max_minutes=30))
    # Planned at 4 epochs (validating 2 and 4), cut to 3 after the first: epoch 3 is the last.
    assert [h["epoch"] for h in result["history"] if "mean_iu" in h] == [2, 3]
    assert result["best"]["epoch"] in (2, 3)
    assert (tmp_path / "run" / "best.safetensors").is_file()
