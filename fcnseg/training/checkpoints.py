"""A run's resumable checkpoint, ``RUN_DIR/last.safetensors``: written at epoch ends (and every
``--checkpoint-every`` steps), read back on ``--resume``, and named in the message of a run
that has to stop."""

from __future__ import annotations

from pathlib import Path

from ..errors import FcnsegError
from ..files.atomic import remove_stale
from .config import TrainConfig
from .distributed import Processes
from .runlog import RunLog
from .setup import Run
from .state import TrainState, rng_state, set_rng_state

__all__ = ["Checkpoints"]


class Checkpoints:
    """Writes and restores one run's ``last.safetensors``; remembers the step last written."""

    def __init__(
        self, run_dir: Path, run: Run, config: TrainConfig, procs: Processes, log: RunLog
    ) -> None:
        self.path = run_dir / "last.safetensors"
        self.run, self.config, self.procs, self.log = run, config, procs, log
        self.objects = {"scheduler": run.scheduler, "scaler": run.scaler}
        self.saved_step: int | None = None

    def write(self, state: TrainState) -> None:
        """Write ``state`` with the run's objects (collective: every process sends its
        generators' states)."""
        run = self.run
        rng = self.procs.gather(rng_state(self.procs.device))
        if self.procs.main:
            state.save(
                self.path,
                model=run.model,
                meta=run.model.meta.to_json(),
                optimizer=run.optimizer,
                objects=self.objects,
                rng=rng,
                config=self.config.to_dict(),
                world=self.procs.world,
                average=run.average,
            )
        self.saved_step = state.step
        self.procs.barrier()

    def restore(self) -> TrainState:
        """The state of the checkpoint, its objects loaded into the run's."""
        if not self.path.is_file():
            raise FcnsegError(
                f"{self.path}: nothing to resume; train without --resume first, "
                "or point --out at the run directory"
            )
        state, contents = TrainState.restore(
            self.path,
            model=self.run.model,
            optimizer=self.run.optimizer,
            objects=self.objects,
            average=self.run.average,
        )
        self.saved_step = state.step
        if self.procs.main:
            remove_stale(self.path.parent)  # temporary files of a writer killed mid-write
        world = contents.info["world"]
        if world == self.procs.world:
            set_rng_state(contents.rng[self.procs.rank], self.procs.device)
        else:
            self.log.say(
                f"resuming {world}-process training with {self.procs.world}: the "
                "data order is kept, the dropout draws are not"
            )
        self.log.say(f"resumed from {self.path} at epoch {state.epoch + 1}, step {state.step}")
        return state

    def diverged(self, step: int, what: str) -> FcnsegError:
        """The one-line error that stops a run whose loss or weights are no longer finite."""
        kept = (
            f"the last checkpoint, {self.path} (step {self.saved_step}), is kept"
            if self.saved_step is not None
            else "no checkpoint was written"
        )
        return FcnsegError(
            f"step {step}: {what}; training stopped and {kept}; lower --lr (the "
            "summed loss wants ~1e-10) or turn off --amp, and train again"
        )
