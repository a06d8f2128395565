"""The training state: the one thing a checkpoint saves and a resumption restores.

:class:`TrainState` lists the run's position and record (one list of fields, written and read
by the same code). A checkpoint is that state plus the live objects' own states (model,
optimiser, scheduler, grad scaler) and each process's random-number generators, laid out on
disk by :mod:`fcnseg.files.checkpoint`.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel

from ..errors import CheckpointError
from ..evaluation.metrics import METRICS
from ..files.checkpoint import CheckpointContents, read_checkpoint, write_checkpoint
from ..models import Normalization

__all__ = ["TrainState", "rng_state", "set_rng_state"]


@dataclass
class TrainState:
    """Where a run is and what it has seen.

    Attributes:
        epoch: the epoch in progress (0-based).
        step_in_epoch: optimiser steps taken in it.
        step: optimiser steps taken in all.
        epoch_loss: sum and count of this epoch's batch losses so far.
        best: the best epoch's record by validation mean IU, or ``None``.
        history: one record per finished epoch, as in ``metrics.jsonl``.
        epochs: the epochs the run takes where ``--max-minutes`` has cut ``--epochs``
            (:mod:`.budget`), else ``None``.
    """

    epoch: int = 0
    step_in_epoch: int = 0
    step: int = 0
    epoch_loss: list[float] = field(default_factory=lambda: [0.0, 0])
    best: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    epochs: int | None = None

    def end_epoch(
        self, *, train_loss: float, scores: dict[str, Any] | None, lr: float, seconds: float
    ) -> tuple[dict[str, Any], bool]:
        """Record the finished epoch and move to the next; its record, and whether it is the
        best so far by mean IU (of the first head, for a net of several). An epoch not
        validated (``--val-every``) has ``scores`` ``None``: its record has no metrics."""
        record = {
            "epoch": self.epoch + 1,
            "step": self.step,
            "train_loss": train_loss,
            "lr": lr,
            "time": round(seconds, 2),
        }
        self.history.append(record)
        self.epoch, self.step_in_epoch, self.epoch_loss = self.epoch + 1, 0, [0.0, 0]
        return record, scores is not None and self.score(record, scores)

    def score(self, record: dict[str, Any], scores: dict[str, Any]) -> bool:
        """Add an epoch's validation ``scores`` to its ``record``; whether it is the best so far
        by mean IU."""
        record.update({k: scores[k] for k in METRICS})
        if "heads" in scores:  # a net of several heads: each head's four scores too
            record["heads"] = {
                name: {k: part[k] for k in METRICS} for name, part in scores["heads"].items()
            }
        is_best = self.best is None or scores["mean_iu"] > self.best["mean_iu"]
        if is_best:
            self.best = {
                "epoch": record["epoch"],
                "step": record["step"],
                **{k: scores[k] for k in METRICS},
            }
        return is_best

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainState:
        # A checkpoint written before a field existed leaves it at its default.
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def save(
        self,
        path: Path,
        *,
        model: torch.nn.Module,
        meta: dict[str, Any],
        optimizer: torch.optim.Optimizer,
        objects: dict[str, Any],
        rng: dict[int, dict[str, Tensor]],
        config: dict[str, Any],
        world: int,
        average: AveragedModel | None = None,
    ) -> None:
        """Write the checkpoint: this state, the model's weights and metadata, the optimiser,
        the ``objects``' state dicts (scheduler, scaler), the generators and the average of
        the weights (``--ema``)."""
        info = {
            "state": asdict(self),
            "config": config,
            "world": world,
            "model": meta,
            **{name: obj.state_dict() for name, obj in objects.items()},
        }
        write_checkpoint(
            path,
            CheckpointContents(
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                rng=rng,
                info=info,
                average=average.state_dict() if average is not None else {},
            ),
        )

    @classmethod
    def restore(
        cls,
        path: Path,
        *,
        model: Any,
        optimizer: torch.optim.Optimizer,
        objects: dict[str, Any],
        average: AveragedModel | None = None,
    ) -> tuple[TrainState, CheckpointContents]:
        """Load a checkpoint into the live objects; the state, and the contents (for the
        generators and the process count). A run that starts keeping an ``average`` on
        resuming starts it from the checkpoint's weights."""
        contents = read_checkpoint(path)
        info = contents.info
        try:
            model.load_state_dict(contents.model)
            optimizer.load_state_dict(contents.optimizer)
            model.normalization = Normalization.from_dict(
                info["model"]["normalization"], source=str(path)
            )
            if average is not None:
                average.module.normalization = model.normalization
                if contents.average:
                    average.load_state_dict(contents.average)
                else:
                    average.module.load_state_dict(contents.model)
            for name, obj in objects.items():
                if info[name]:
                    obj.load_state_dict(info[name])
            state = cls.from_json(info["state"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"{path}: does not fit this run's model or optimiser "
                f"({str(exc).splitlines()[0]}); resume with the settings "
                "the run was started with"
            ) from None
        return state, contents


def rng_state(device: torch.device | None = None) -> dict[str, Tensor]:
    """This process's torch, CUDA, NumPy and Python generator states, as tensors."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, words, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
        "numpy_extra": torch.tensor([pos, has_gauss, gauss], dtype=torch.float64),
        "python_words": torch.tensor(words, dtype=torch.int64),
        "python_gauss": torch.tensor(
            [gauss_next is not None, gauss_next or 0.0], dtype=torch.float64
        ),
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Tensor], device: torch.device | None = None) -> None:
    """Restore the states :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    pos, has_gauss, gauss = state["numpy_extra"].tolist()
    np.random.set_state(
        ("MT19937", state["numpy_keys"].numpy().astype(np.uint32), int(pos), int(has_gauss), gauss)
    )
    has_next, gauss_next = state["python_gauss"].tolist()
    random.setstate((3, tuple(state["python_words"].tolist()), gauss_next if has_next else None))
    if device is not None and device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
