"""The training step compiled by ``torch.compile``, where it measures faster on this machine.

Inductor fuses what eager PyTorch runs op by op: batch norm, activations and their backward
passes. On the CamVid recipe (EfficientNet-Lite1 FCN-4s, 8 crops of 288×384, 2-core AMD EPYC)
``benchmarks/speed.py`` measured the compiled step 1.19× faster than eager (5.18 against 4.35
img/s, in turns), after 73 s of compiling the first time (9 s once Inductor's cache holds it).
Whether it pays, and whether the run is long enough to repay the compiling, depends on the
machine and the run, so ``--compile auto`` (the default) decides at run time:

1. the first steps run eager, and steps 2–3 are timed (the first warms up);
2. if the rest of the run would take at least :data:`WORTH` seconds eager, the next step
   compiles; then compiled and eager steps take turns, three each, so that the loader's
   workers and other processes weigh on both alike;
3. the faster of the two is kept, said in one line. A compile that fails (Inductor has bugs
   of its own) is said in one line and the run goes on eager, redoing the batch.

``--compile on`` compiles from the first step and keeps it; ``off`` never compiles. Auto
stays eager where a comparison cannot hold or could hurt: batches of varying shape (no crop:
every new shape would compile again), several processes, activation checkpointing, and
``--deterministic`` (a compiled step does not give eager's bits, and a resumed run would mix
them). Batches of another shape than the compiled one (an epoch's short last batch) run eager.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from ..errors import FcnsegError
from .config import TrainConfig

__all__ = ["WORTH", "StepCompiler"]

#: Eager seconds left in the run below which auto does not try compiling: several times the
#: compiling itself (73 s for the CamVid recipe's net on 2 cores), so that a failed or slower
#: trial costs a small share of the run.
WORTH = 600.0
TIMED = 3  # steps timed on each side


class StepCompiler:
    """Chooses, step by step, the module that runs the training batches (``set_net``)."""

    def __init__(
        self,
        config: TrainConfig,
        eager: nn.Module,
        *,
        steps_left: Callable[[], int],
        world: int,
        set_net: Callable[[nn.Module], None],
        say: Callable[[str], None],
    ) -> None:
        self.eager, self.set_net, self.say, self.steps_left = eager, set_net, say, steps_left
        self.batch = config.batch_size * config.accumulate  # images of a whole step
        fixed = config.crop is not None and world == 1
        stays_eager = config.deterministic or config.checkpoint_activations or not fixed
        self.mode = "off" if config.compile == "auto" and stays_eager else config.compile
        self.compiled: nn.Module | None = None
        self.shape: tuple[int, ...] | None = None
        self.times: dict[str, list[float]] = {"eager": [], "compiled": []}
        self.phase = {"off": "done", "on": "compile", "auto": "eager"}[self.mode]
        self.started = 0.0
        self.current = "eager"

    def start(self, images: torch.Tensor) -> None:
        """Before a step whose first batch is ``images``: choose its module."""
        shape = tuple(images.shape)
        if self.phase == "compile" and self.compiled is None:
            self.compiled = torch.compile(self.eager, dynamic=False)
            self.shape = shape
        use = self.compiled is not None and shape == self.shape and self.phase != "eager"
        if self.phase == "trial":  # turns: compiled, eager, compiled…
            use = use and len(self.times["compiled"]) <= len(self.times["eager"])
        self.current = "compiled" if use else "eager"
        self.set_net(self.compiled if use else self.eager)
        self.started = time.perf_counter()

    def failed(self, exc: Exception) -> bool:
        """Whether ``exc`` is the compiler's, raised compiling this step's first batch: if so,
        go on eager (the caller redoes the batch); a user's error is not."""
        if self.phase != "compile" or self.current != "compiled" or isinstance(exc, FcnsegError):
            return False
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        self.say(f"torch.compile failed ({first[:160]}); training on eager")
        self.phase, self.compiled = "done", None
        self.set_net(self.eager)
        return True

    def finish(self, images: int) -> None:
        """After a step of ``images`` images: time it (whole steps only), and move on when
        enough steps are timed."""
        seconds = (time.perf_counter() - self.started) / max(images, 1)  # per image
        if self.phase == "done" or images != self.batch:
            return
        if self.phase == "compile":
            if self.current == "compiled":
                self.say(f"training step compiled in {seconds * images:.0f} s")
                self.phase = "trial" if self.mode == "auto" else "done"
            return
        self.times[self.current].append(seconds)
        if self.phase == "eager":
            timed = self.times["eager"][1:]  # the first step warms up
            if len(timed) < TIMED - 1:
                return
            left = statistics.median(timed) * images * self.steps_left()
            self.phase = "compile" if left >= WORTH else "done"
            self.times["eager"] = []  # timed again, in turns with the compiled step
        elif min(len(t) for t in self.times.values()) >= TIMED:
            self._choose()

    def _choose(self) -> None:
        eager, compiled = (statistics.median(self.times[k]) for k in ("eager", "compiled"))
        keep = compiled < eager
        self.say(
            f"training step: {1 / compiled:.2f} img/s compiled against {1 / eager:.2f} eager; "
            f"{'compiled' if keep else 'eager'} kept (--compile on/off to choose)"
        )
        if not keep:
            self.compiled = None
        self.phase = "done"
