"""The training loop (paper §3.4, §4.3): steps, epochs, validation, checkpoints.

Each epoch trains on the training split, scores the validation split with the four metrics of
§5 at full resolution (every epoch, or every ``--val-every``-th and the last), keeps the model
with the best mean IU (``best.safetensors``) and a resumable checkpoint (``last.safetensors``),
and logs (:mod:`.runlog`).

Exact resumption: every source of randomness is restored or a pure function of the position
(:mod:`.distributed`), and the loss sampling (§3.4) is drawn from (seed, rank, step). A run
stopped after step *s* and resumed gives the weights of the uninterrupted run, bit for bit in
``deterministic`` mode on the same machine. Under ``torchrun``, validation shards are disjoint
and their confusion matrices are all-reduced, so N processes report exactly the metrics of one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset
from tqdm import tqdm

from ..data import SegmentationDataset
from ..device import freed_memory_kept
from ..evaluation import confusion
from ..files import save
from ..models import FCN, HeadView
from .budget import epochs_that_fit, pace
from .checkpoints import Checkpoints
from .config import TrainConfig
from .distributed import Processes, mix
from .fastest import FastestStep
from .interrupt import StopRequest
from .loggers import build_logger
from .optim import lr_factor
from .runlog import RunLog
from .setup import Run, build_run
from .state import TrainState
from .step import backward, update, weights_finite

__all__ = ["Trainer", "train", "validate"]


class Trainer:
    """One run: what it trains with (:class:`~.setup.Run`), where it is (:class:`TrainState`)."""

    def __init__(self, config: TrainConfig, procs: Processes) -> None:
        self.config, self.procs = config, procs
        self.run_dir = Path(config.out)
        self.log = RunLog(self.run_dir, main=procs.main)
        self.log.claim(resume=config.resume, overwrite=config.overwrite)
        self.run = build_run(config, procs, self.log.say)
        self.log.skipped(self.run.skipped)
        self.checkpoints = Checkpoints(self.run_dir, self.run, config, procs, self.log)
        self.stop = StopRequest(enabled=procs.world == 1, say=self.log.warn)
        self.state = self.checkpoints.restore() if config.resume else TrainState()
        self._loss_at_step = list(self.state.epoch_loss)  # the epoch's loss at the last step
        self.fastest = FastestStep(
            config,
            self.run.net,
            device=procs.device,
            steps_left=lambda: self.epochs * self.run.steps_per_epoch - self.state.step,
            world=procs.world,
            use=self._use,
            say=self.log.say,
        )
        self._step_images = 0
        if config.resume:  # the plan resumed, or re-made for changed --epochs/--max-minutes
            self._plan()

    @property
    def epochs(self) -> int:
        """The epochs this run takes: ``--epochs``, or fewer under ``--max-minutes``."""
        return self.config.epochs if self.state.epochs is None else self.state.epochs

    def _use(self, net: torch.nn.Module, amp: str) -> None:
        self.run.net, self.run.amp = net, amp

    def fit(self) -> dict[str, Any]:
        """Train to the last epoch; the result :func:`train` returns. Interrupted (Ctrl-C),
        it first checkpoints the last step taken, so that ``--resume`` continues from it."""
        try:
            with self.stop.deferred():
                return self._fit()
        except KeyboardInterrupt:
            self._interrupted()
            raise

    def _interrupted(self) -> None:
        state, saved = self.state, self.checkpoints.saved_step
        if self.stop.whole and state.step not in (0, saved):
            state.epoch_loss = list(self._loss_at_step)  # the batches of a partial step redo
            if weights_finite(self.run.model, self.procs):
                self.checkpoint()
        if self.checkpoints.saved_step is None:
            self.log.warn("interrupted before the first optimiser step: nothing to resume")
        else:
            self.log.warn(
                f"interrupted; step {self.checkpoints.saved_step} is saved: continue "
                f"with `fcnseg train --resume --out {self.run_dir}`"
            )

    def _fit(self) -> dict[str, Any]:
        config = self.config
        self.log.start(config)
        self.logger = build_logger(config.logger, self.run_dir, main=self.procs.main)
        try:
            return self._epochs()
        finally:
            self.logger.close()

    def _epochs(self) -> dict[str, Any]:
        config, run, state = self.config, self.run, self.state
        while state.epoch < self.epochs:
            start = time.perf_counter()
            train_loss = self.train_epoch()
            self._check_finite()
            number = state.epoch + 1
            due = number % config.val_every == 0 or number == self.epochs
            scores = validate(run, config, self.procs) if due else None
            record, best = state.end_epoch(
                train_loss=train_loss,
                scores=scores,
                seconds=time.perf_counter() - start,
                lr=config.lr * run.lr_factor(state.step),
            )
            self._loss_at_step = [0.0, 0]
            self._plan()
            if scores is None and state.epoch == self.epochs:
                # The budget ended the run on an epoch not due for validation: the last is
                # always scored, so that the best model is chosen among the final weights too.
                start = time.perf_counter()
                scores = validate(run, config, self.procs)
                best = state.score(record, scores)
                record["time"] = round(record["time"] + time.perf_counter() - start, 2)
            if best and self.procs.main:
                save(
                    run.scored,
                    self.run_dir / "best.safetensors",
                    scores=scores,
                    epoch=record["epoch"],
                    step=record["step"],
                )
            self.checkpoint()
            self.log.epoch(record, state.history, epochs=self.epochs, best=best)
            self.logger.epoch(record, scores, run.scored, run.val_set)
            if self.stop.asked:
                raise KeyboardInterrupt
        return {
            "best": state.best,
            "last": state.history[-1] if state.history else None,
            "history": state.history,
            "steps": state.step,
            "run_dir": str(self.run_dir),
            "skipped": run.skipped,
            "best_path": str(self.run_dir / "best.safetensors"),
        }

    def _plan(self) -> None:
        """Set the epochs this run takes: ``--epochs``, or under ``--max-minutes`` those that
        fit (the main process's clock decides for all), and end the learning-rate schedule
        with them. After each epoch, and on resuming, whose flags may differ."""
        config, state = self.config, self.state
        times = [record["time"] for record in state.history]
        epochs, one_off = config.epochs, 0.0
        if config.max_minutes is not None and times:
            one_off = self.fastest.one_off if len(times) == 1 else 0.0
            fit = epochs_that_fit(60 * config.max_minutes, times, config.epochs, one_off)
            epochs = int(self.procs.sum(torch.tensor(fit if self.procs.main else 0)))
        if epochs == self.epochs:
            return
        if epochs < config.epochs and state.epochs is None:  # said once; the epoch lines after
            self.log.say(
                f"--max-minutes {config.max_minutes:g}: {epochs} of {config.epochs} epochs "
                f"fit at {pace(times, one_off):.0f} s each; the learning rate anneals to the "
                "last of them"
            )
        state.epochs = None if epochs == config.epochs else epochs
        self.run.use_schedule(lr_factor(config, epochs * self.run.steps_per_epoch))

    def train_epoch(self) -> float:
        """Train from the current position to the end of the epoch; the mean batch loss."""
        config, run, state = self.config, self.run, self.state
        run.net.train()
        if config.freeze_backbone:
            run.model.backbone.eval()
        run.sampler.set_epoch(state.epoch)
        run.sampler.skip = state.step_in_epoch * config.accumulate * config.batch_size
        first = state.step_in_epoch * config.accumulate
        bar = tqdm(
            total=run.batches,
            initial=first,
            disable=not self.procs.main or None,
            desc=f"epoch {state.epoch + 1}/{self.epochs}",
            unit="batch",
            leave=False,
            dynamic_ncols=True,
        )
        seen, start = 0, time.perf_counter()
        with bar:
            for i, (images, masks) in enumerate(self._batches(first), start=first):
                value = self._batch(i, images, masks)
                seen += len(images) * self.procs.world
                bar.update()
                bar.set_postfix(
                    loss=f"{value:.4g}", img_s=f"{seen / (time.perf_counter() - start):.1f}"
                )
        total, count = state.epoch_loss
        return total / max(count, 1)

    def _batches(self, first: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The loader's batches; loader workers that a Ctrl-C ended mean stop, not an error."""
        try:
            yield from self.run.loader
        except RuntimeError:
            if not self.stop.asked:
                raise
            raise KeyboardInterrupt from None

    def _batch(self, i: int, images: torch.Tensor, masks: torch.Tensor) -> float:
        """Batch ``i`` of the epoch: its backward pass, and the step if it is the last of its
        group of ``accumulate``; returns its loss."""
        config, run, state, procs = self.config, self.run, self.state, self.procs
        group_start = i - i % config.accumulate
        last_of_group = i == group_start + min(config.accumulate, run.batches - group_start) - 1
        # With the mean loss, the K batches of a step (and the processes, which
        # DistributedDataParallel averages) are averaged, so neither K nor the number of
        # processes changes the learning rate. The summed loss (§4.3, the reference) is summed
        # over both: undo the processes' averaging.
        group = min(config.accumulate, run.batches - group_start)
        scale = 1 / group if config.reduction == "mean" else float(procs.world)
        if i == group_start:
            self.fastest.start(images)
            self._step_images = 0
        self._step_images += len(images)
        seed = mix(config.seed, procs.rank, state.step, i)

        def batch() -> float:
            generator = torch.Generator().manual_seed(seed)
            return backward(
                run,
                config,
                procs,
                images,
                masks,
                generator=generator,
                scale=scale,
                sync=last_of_group,
            )

        try:
            value = batch()
        except Exception as exc:
            if i != group_start or not self.fastest.failed(exc):
                raise
            run.optimizer.zero_grad(set_to_none=True)  # the batch again, eager, from nothing
            value = batch()
        if not math.isfinite(value):
            raise self.checkpoints.diverged(state.step + 1, f"the loss is {value}")
        state.epoch_loss[0] += value
        state.epoch_loss[1] += 1
        if last_of_group:
            update(run)
            self.fastest.finish(self._step_images)
            state.step += 1
            state.step_in_epoch += 1
            self._loss_at_step = list(state.epoch_loss)
            every = config.checkpoint_every
            if every and state.step % every == 0 and state.step_in_epoch < run.steps_per_epoch:
                self.checkpoint()
            if self.stop.asked:
                raise KeyboardInterrupt
        return value

    def checkpoint(self) -> None:
        """Write ``last.safetensors``, once the weights are known to be finite (collective)."""
        self._check_finite()
        self.checkpoints.write(self.state)

    def _check_finite(self) -> None:
        """Refuse to go on with (and to save) weights that are no longer finite. Collective."""
        if not weights_finite(self.run.model, self.procs):
            raise self.checkpoints.diverged(
                self.state.step, "the weights are no longer finite (the training diverged)"
            )


def validate(run: Run, config: TrainConfig, procs: Processes) -> dict[str, Any]:
    """The four metrics of the scored model (:attr:`~.setup.Run.scored`) on the validation
    split, exact across processes. A net of several heads is scored head by head on each label
    set: the first head's scores lead (they choose the best epoch) and ``heads`` holds them
    all."""
    # Every process scores with rank 0's batch-norm statistics, as one process would.
    model = run.scored
    procs.broadcast_buffers(model)
    heads = run.val_set.heads
    if not heads:
        return _scores(model, run.val_set, config, procs)
    results = {name: _scores(model.head(name), heads[name], config, procs) for name in heads}
    return {**next(iter(results.values())), "heads": results}


def _scores(
    model: FCN | HeadView, dataset: SegmentationDataset, config: TrainConfig, procs: Processes
) -> dict[str, Any]:
    shard = Subset(dataset, range(procs.rank, len(dataset), procs.world))
    counts = confusion(
        model,
        shard,
        num_classes=dataset.num_classes,
        ignore_index=dataset.ignore_index,
        batch_size=config.val_batch_size,
        workers=0,
        device=procs.device,
        amp="off" if config.amp == "auto" else config.amp,  # auto: the model's own scores
        channels_last=config.channels_last,
    )
    procs.sum(counts.whole.matrix)
    return {**counts.whole.scores(), "confusion": counts.whole.matrix.tolist()}


def train(config: TrainConfig) -> dict[str, Any]:
    """Train an FCN as ``config`` describes (see :class:`~fcnseg.training.config.TrainConfig`).

    Returns:
        ``best`` (epoch, step and the four metrics of the best epoch by mean IU), ``last``
        (the last epoch's record), ``history`` (one record per epoch, as in ``metrics.jsonl``),
        ``steps``, ``run_dir``, ``skipped`` and ``best_path``.

    Raises:
        FcnsegError: a setting, file or checkpoint the user can fix, or a non-finite loss.
    """
    config = config.resolved()
    procs = Processes(config.device)
    try:
        with freed_memory_kept():  # each step reuses the last one's memory (half the step)
            return Trainer(config, procs).fit()
    finally:
        procs.close()
