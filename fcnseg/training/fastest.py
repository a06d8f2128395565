"""The fastest training step on this machine: mixed precision and ``torch.compile`` where they
measure faster, chosen at run time.

Both are speed choices whose worth depends on the machine, and on more than its instruction
set. On a 2-core EPYC with AVX-512 BF16, bf16 autocast doubled the CamVid recipe's step
(EfficientNet-Lite1 FCN-4s, 8 crops of 288×384: 9.3 against 4.3 img/s) until training kept
the memory it frees (:func:`fcnseg.device.freed_memory_kept`); since then fp32 is the faster
there (10.1 against 9.1). A CPU without bf16 instructions only emulates it, slower than fp32.
Inductor fuses what eager PyTorch runs op by op (batch norm, activations, their backward
passes): 1.19× on that recipe in fp32 on one machine, no faster on CHASE_DB1's, after 66–73 s
of compiling. So ``--amp auto`` and ``--compile auto`` (the defaults) decide by timing the
run's own steps:

1. the first steps run eager in fp32; one warms up, :data:`TIMED` are timed;
2. if the rest of the run would take at least :data:`WORTH` ``["amp"]`` seconds and the device
   computes bf16 natively, fp32 and bf16 steps take turns, :data:`TIMED` timed each, and the
   faster is kept, said in one line;
3. then, if the rest would take at least :data:`WORTH` ``["compile"]`` seconds, the next step
   compiles, eager and compiled steps take turns the same way, and the faster is kept. A
   compile that fails (Inductor has bugs of its own) is said in one line and the run goes on
   eager, redoing the batch.

Every step of a trial trains: a trial costs only the slower steps it times (and the compiling).
``--amp off/bf16/fp16`` and ``--compile on/off`` fix a choice instead. Auto stays fp32 and
eager where timing cannot choose well or a choice could hurt: several processes (each would
time its own), ``--deterministic`` (a timed choice can differ between two runs, and a resumed
run would mix them). Compiling also needs batches of one shape (a crop: every new shape would
compile again) and no activation checkpointing. Batches of another shape than the compiled one
(an epoch's short last batch) run eager. Validation scores in fp32 under ``--amp auto``, so
that the reported metrics are the model's, not its bf16 rendition's.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..device import native_precisions
from ..errors import FcnsegError
from .config import TrainConfig

__all__ = ["TIMED", "WORTH", "FastestStep", "Step"]

#: Eager seconds left in the run below which auto does not try a choice. Trying bf16 costs
#: nothing but the timed steps, but a run of under a minute has steps too short to time well
#: and gains seconds at most. Compiling costs 73 s for the CamVid recipe's net on 2 cores:
#: several times that, so that a failed or slower trial costs a small share of the run.
WORTH = {"amp": 60.0, "compile": 600.0}
TIMED = 3  # steps timed on each side


@dataclass(frozen=True)
class Step:
    """How a training step runs: its mixed precision (``--amp``) and whether compiled."""

    amp: str
    compiled: bool

    def label(self, other: Step) -> str:
        """What tells this step from ``other``."""
        if self.amp != other.amp:
            return "fp32" if self.amp == "off" else self.amp
        return "compiled" if self.compiled else "eager"


class FastestStep:
    """Chooses, step by step, how the training batches run (``use(net, amp)``)."""

    def __init__(
        self,
        config: TrainConfig,
        eager: nn.Module,
        *,
        device: torch.device,
        steps_left: Callable[[], int],
        world: int,
        use: Callable[[nn.Module, str], None],
        say: Callable[[str], None],
    ) -> None:
        self.eager, self.use, self.say, self.steps_left = eager, use, say, steps_left
        self.batch = config.batch_size * config.accumulate  # images of a whole step
        timed_well = world == 1 and not config.deterministic
        compilable = config.crop is not None and not config.checkpoint_activations
        bf16 = "bf16" in native_precisions(device)
        self.pending = [
            trial
            for trial, wanted in (
                ("amp", config.amp == "auto" and timed_well and bf16),
                ("compile", config.compile == "auto" and timed_well and compilable),
            )
            if wanted
        ]
        amp = "off" if config.amp == "auto" else config.amp
        self.kept = Step(amp, compiled=config.compile == "on")
        self.trial = [self.kept] if self.pending else []  # the steps taking turns now
        self.times: dict[Step, list[float]] = {self.kept: []}
        self.warm: set[Step] = set()
        self.compiled: dict[str, nn.Module] = {}  # by amp: autocast changes what compiles
        self.shape: tuple[int, ...] | None = None
        self.current = self.kept
        self.started = 0.0
        self.one_off = 0.0  # seconds of the steps that warmed up or compiled, not timed

    def start(self, images: torch.Tensor) -> None:
        """Before a step whose first batch is ``images``: choose how it runs."""
        shape = tuple(images.shape)
        self.shape = self.shape or shape
        step = min(self.trial, key=lambda s: len(self.times[s])) if self.trial else self.kept
        if step.compiled and shape != self.shape:
            step = dataclasses.replace(step, compiled=False)  # a short batch: no recompiling
        elif step.compiled and step.amp not in self.compiled:
            self.compiled[step.amp] = torch.compile(self.eager, dynamic=False)
        self.current = step
        self.use(self.compiled[step.amp] if step.compiled else self.eager, step.amp)
        self.started = time.perf_counter()

    def failed(self, exc: Exception) -> bool:
        """Whether ``exc`` is the compiler's, raised compiling this step's first batch: if so,
        go on eager (the caller redoes the batch); a user's error is not."""
        step = self.current
        if not step.compiled or step in self.warm or isinstance(exc, FcnsegError):
            return False
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        self.say(f"torch.compile failed ({first[:160]}); training on eager")
        eager = dataclasses.replace(step, compiled=False)
        self.compiled.clear()
        self.pending = [t for t in self.pending if t != "compile"]
        self.kept = dataclasses.replace(self.kept, compiled=False)
        self.trial = list(dict.fromkeys(dataclasses.replace(s, compiled=False) for s in self.trial))
        for s in self.trial:
            self.times.setdefault(s, [])
        self.current = eager
        self.use(self.eager, eager.amp)
        return True

    def finish(self, images: int) -> None:
        """After a step of ``images`` images: time it (whole steps of a trial only), and move on
        when every step of the trial is timed."""
        seconds = (time.perf_counter() - self.started) / max(images, 1)  # per image
        step = self.current
        if images != self.batch:
            return
        if step not in self.warm:  # its first step warms up, or compiles
            self.warm.add(step)
            self.one_off += seconds * images
            if step.compiled:
                self.say(f"training step compiled in {seconds * images:.0f} s")
            return
        if step not in self.trial:
            return
        self.times[step].append(seconds)
        if min(len(self.times[s]) for s in self.trial) >= TIMED:
            self._choose()

    def _choose(self) -> None:
        median = {s: statistics.median(self.times[s]) for s in self.trial}
        self.kept = min(self.trial, key=median.__getitem__)
        if len(self.trial) == 2:
            a, b = self.trial
            flag = "--amp off/bf16" if a.amp != b.amp else "--compile on/off"
            self.say(
                f"training step: {1 / median[b]:.2f} img/s {b.label(a)} against "
                f"{1 / median[a]:.2f} {a.label(b)}; {self.kept.label(a if self.kept == b else b)}"
                f" kept ({flag} to choose)"
            )
        compiled = self.compiled.get(self.kept.amp) if self.kept.compiled else None
        # `is not None`: torch.compile's wrapper refuses len(), and so a truth test.
        self.compiled = {self.kept.amp: compiled} if compiled is not None else {}
        left = median[self.kept] * self.batch * self.steps_left()
        self.trial = []
        while self.pending and not self.trial:
            trial = self.pending.pop(0)
            if left >= WORTH[trial]:
                change = {"amp": "bf16"} if trial == "amp" else {"compiled": True}
                self.trial = [self.kept, dataclasses.replace(self.kept, **change)]
        self.times = {s: [] for s in self.trial}
