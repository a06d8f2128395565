"""``--amp auto`` and ``--compile auto``: the training step in bf16 and compiled where each
measures faster, fp32 and eager where not. The clock is stood in for, and torch.compile's
wrapper is made but never called (compiling takes minutes on 2 cores); what is tested is the
choosing around them. A compiler that fails mid-run: tests/training/test_train.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from fcnseg.training import fastest
from fcnseg.training.config import TrainConfig
from fcnseg.training.fastest import TIMED, FastestStep, Step


def settings(**changes) -> TrainConfig:
    values = dict(dataset="synthetic", root="-", crop=(32, 32), batch_size=2)
    return TrainConfig(**{**values, **changes})


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


# torch.compile's own wrapper, which compiles only when called (the steps here are not):
# the chooser must handle it as it is (it refuses len(), and so a truth test).
COMPILE = torch.compile


def choose(
    monkeypatch,
    seconds: dict[Step, float],
    *,
    native: bool = True,
    steps_left: int = 10_000,
    **changes,
) -> tuple[Step, list[str], list[Step]]:
    """Run a FastestStep through its trials on a clock where each kind of step takes the given
    seconds; returns the step it settles on, what it said, and every step it ran."""
    clock, said, ran = Clock(), [], []
    monkeypatch.setattr(fastest.time, "perf_counter", clock)
    monkeypatch.setattr(
        fastest.torch, "compile", lambda module, **_: COMPILE(module, backend="eager")
    )
    monkeypatch.setattr(fastest, "native_precisions", lambda _: ("bf16",) if native else ())
    eager = nn.Identity()

    def use(net: nn.Module, amp: str) -> None:
        ran.append(Step(amp, compiled=net is not eager))

    chooser = FastestStep(
        settings(**changes),
        eager,
        device=torch.device("cpu"),
        steps_left=lambda: steps_left,
        world=1,
        use=use,
        say=said.append,
    )
    images = torch.zeros(2, 3, 32, 32)
    for _ in range(4 * (TIMED + 1) + 4):
        chooser.start(images)
        clock.now += seconds[ran[-1]]
        chooser.finish(len(images))
    chooser.start(images)
    return ran[-1], said, ran


FP32, BF16 = Step("off", compiled=False), Step("bf16", compiled=False)
FP32_C, BF16_C = Step("off", compiled=True), Step("bf16", compiled=True)


def test_auto_keeps_bf16_where_it_is_faster_then_tries_compiling_it(monkeypatch) -> None:
    seconds = {FP32: 2.0, BF16: 1.0, BF16_C: 0.8, FP32_C: 1.5}
    kept, said, ran = choose(monkeypatch, seconds)
    assert kept == BF16_C and FP32_C not in ran
    assert (
        said[0]
        == "training step: 2.00 img/s bf16 against 1.00 fp32; bf16 kept (--amp off/bf16 to choose)"
    )
    assert said[2].startswith("training step: 2.50 img/s compiled against 2.00 eager; compiled")
    # In turns, not one after the other: the loader and other processes weigh on both alike.
    # bf16's first step warms up untimed.
    assert ran[TIMED + 1 : 3 * TIMED + 2] == [FP32, BF16, BF16] + [FP32, BF16] * (TIMED - 1)


def test_auto_keeps_fp32_where_bf16_is_slower(monkeypatch) -> None:
    kept, said, _ = choose(monkeypatch, {FP32: 1.0, BF16: 1.5, FP32_C: 2.0, BF16_C: 2.0})
    assert kept == FP32
    assert "fp32 kept (--amp off/bf16" in said[0] and "eager kept (--compile" in said[-1]


def test_auto_tries_no_bf16_where_the_cpu_would_emulate_it(monkeypatch) -> None:
    seconds = {FP32: 2.0, BF16: 1.0, FP32_C: 1.0}
    kept, said, ran = choose(monkeypatch, seconds, native=False)
    assert BF16 not in ran and kept == FP32_C and len(said) == 2


def test_a_short_run_tries_nothing(monkeypatch) -> None:
    # 10 steps of 2 images at 2 s: 40 s left, under a minute.
    kept, said, ran = choose(monkeypatch, {FP32: 2.0, BF16: 1.0}, steps_left=10)
    assert set(ran) == {FP32} and said == []


def test_fixed_choices_are_kept(monkeypatch) -> None:
    seconds = {FP32: 1.0, BF16: 2.0, BF16_C: 2.0, FP32_C: 0.9}
    kept, said, ran = choose(monkeypatch, seconds, amp="bf16", compile="off")
    assert set(ran) == {BF16} and said == []
    kept, said, ran = choose(monkeypatch, seconds, amp="off", compile="on")
    assert set(ran) == {FP32_C} and said == ["training step compiled in 1 s"]


@pytest.mark.parametrize(
    "changes", [{"deterministic": True}, {"crop": None}, {"checkpoint_activations": True}]
)
def test_auto_stays_eager_where_a_compiled_step_cannot_hold(monkeypatch, changes) -> None:
    seconds = {FP32: 2.0, BF16: 3.0, FP32_C: 1.0}
    kept, said, ran = choose(monkeypatch, seconds, **changes)
    assert FP32_C not in ran and kept == FP32
    # A timed choice of precision can differ between two runs: not where bits must repeat.
    assert (BF16 in ran) == ("deterministic" not in changes)


def test_yaml_on_and_off_are_the_settings_not_booleans(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("dataset: synthetic\nroot: data\ncompile: on\namp: off\n")
    resolved = TrainConfig.from_yaml(path).resolved()
    assert (resolved.compile, resolved.amp) == ("on", "off")
