"""``--compile``: the training step compiled where it measures faster, eager where it does not.
torch.compile itself is stood in for (compiling takes minutes on 2 cores); what is tested is the
choosing around it. A compiler that fails mid-run: tests/training/test_train.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from fcnseg.training import compiled
from fcnseg.training.compiled import TIMED, StepCompiler
from fcnseg.training.config import TrainConfig


def settings(**changes) -> TrainConfig:
    values = dict(dataset="synthetic", root="-", crop=(32, 32), batch_size=2, compile="auto")
    return TrainConfig(**{**values, **changes})


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def choose(monkeypatch, eager_s: float, compiled_s: float, **changes) -> tuple[StepCompiler, list]:
    """Run a StepCompiler through its trial on a clock where each step takes the given time."""
    clock, said, nets = Clock(), [], []
    monkeypatch.setattr(compiled.time, "perf_counter", clock)
    monkeypatch.setattr(compiled.torch, "compile", lambda module, **_: nn.Sequential(module))
    eager = nn.Identity()
    chooser = StepCompiler(
        settings(**changes),
        eager,
        steps_left=lambda: 10_000,
        world=1,
        set_net=nets.append,
        say=said.append,
    )
    images = torch.zeros(2, 3, 32, 32)
    for _ in range(3 * (TIMED + 1)):
        chooser.start(images)
        clock.now += eager_s if nets[-1] is eager else compiled_s
        chooser.finish(len(images))
    chooser.start(images)
    return chooser, said, nets[-1] is eager


def test_auto_keeps_the_compiled_step_when_it_is_faster(monkeypatch) -> None:
    chooser, said, on_eager = choose(monkeypatch, eager_s=2.0, compiled_s=1.0)
    assert not on_eager
    assert said[-1].startswith("training step: 2.00 img/s compiled against 1.00 eager; compiled")


def test_auto_keeps_eager_when_compiling_is_slower(monkeypatch) -> None:
    chooser, said, on_eager = choose(monkeypatch, eager_s=1.0, compiled_s=1.5)
    assert on_eager and "eager kept" in said[-1]


@pytest.mark.parametrize(
    "changes", [{"deterministic": True}, {"crop": None}, {"checkpoint_activations": True}]
)
def test_auto_stays_eager_where_a_compiled_step_cannot_hold(monkeypatch, changes) -> None:
    chooser, said, on_eager = choose(monkeypatch, eager_s=2.0, compiled_s=1.0, **changes)
    assert on_eager and said == []


def test_yaml_on_and_off_are_the_settings_not_booleans(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("dataset: synthetic\nroot: data\ncompile: on\namp: off\n")
    resolved = TrainConfig.from_yaml(path).resolved()
    assert (resolved.compile, resolved.amp) == ("on", "off")
