"""The resumable training checkpoint: one safetensors file, no pickle.

``RUN_DIR/last.safetensors`` holds everything a run needs to continue exactly where it
stopped: the model's tensors (``model/<name>``), the optimiser's state tensors flattened
(``optimizer/<param>/<key>``), and each process's random-number-generator states
(``rng/<rank>/<generator>``) as tensors. The rest — settings, epoch and step, optimiser
hyper-parameters, scheduler and grad-scaler state, the metrics so far — is JSON in the file's
metadata. It is written atomically (:func:`fcnseg.checkpoint.atomic_write`), so a kill
mid-write leaves the previous checkpoint whole.

:func:`read_weights` and :func:`load_model` accept this file as well as a model file written by
:func:`fcnseg.save`, so ``fcnseg eval`` and ``--init-from`` take either.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from .checkpoint import atomic_write, read_metadata, rebuild
from .errors import CheckpointError
from .models import FCN

__all__ = ["TrainingState", "load_model", "read_state", "read_weights", "rng_state",
           "set_rng_state", "write_state"]

KEY = "fcnseg_train"
FORMAT = 1


@dataclass
class TrainingState:
    """The contents of a resumable checkpoint.

    ``info`` holds the JSON part: ``model`` (the model's metadata and normalisation), ``config``,
    ``epoch`` (the epoch in progress), ``step_in_epoch`` and ``step`` (optimiser steps), ``best``,
    ``history``, ``scheduler``, ``scaler``, ``optimizer`` (param groups and non-tensor state).
    """

    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    rng: dict[int, dict[str, Tensor]]
    info: dict[str, Any]


def model_meta(model: FCN) -> dict[str, Any]:
    """What rebuilds ``model``: its metadata and input normalisation, as :func:`fcnseg.save`."""
    return {**model.meta, "normalization": model.normalization.to_dict()}


def write_state(path: str | Path, *, model: FCN, optimizer: torch.optim.Optimizer,
                rng: dict[int, dict[str, Tensor]], info: dict[str, Any]) -> None:
    """Write a resumable checkpoint atomically (``info`` as in :class:`TrainingState`)."""
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in opt["state"].items():
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer/{index}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    for rank, states in rng.items():
        tensors.update({f"rng/{rank}/{k}": v.cpu().contiguous() for k, v in states.items()})
    meta = {**info, "format": FORMAT, "model": model_meta(model),
            "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars}}
    header = {KEY: json.dumps(meta)}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def _header(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint; check the path")
    try:
        with safe_open(str(path), framework="pt") as fh:
            return fh.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a safetensors checkpoint ({exc})") from None


def read_state(path: str | Path) -> TrainingState:
    """Read a checkpoint written by :func:`write_state`."""
    path = Path(path)
    raw = _header(path).get(KEY)
    if raw is None:
        raise CheckpointError(f"{path}: not a resumable training checkpoint; --resume reads the "
                              "last.safetensors that `fcnseg train` writes in its run directory")
    info = json.loads(raw)
    tensors = load_file(str(path))
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}
    state: dict[int, dict[str, Any]] = {}
    rng: dict[int, dict[str, Tensor]] = {}
    for name, value in tensors.items():
        kind, _, rest = name.partition("/")
        if kind in ("optimizer", "rng"):
            owner, key = rest.split("/", 1)
            (state if kind == "optimizer" else rng).setdefault(int(owner), {})[key] = value
    saved = info.pop("optimizer")
    for index, values in saved["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer = {"state": state, "param_groups": saved["param_groups"]}
    return TrainingState(model=model, optimizer=optimizer, rng=rng, info=info)


def read_weights(path: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The model metadata (with ``normalization``) and weights of a model file or a training
    checkpoint."""
    path = Path(path)
    if KEY in _header(path):
        state = read_state(path)
        return state.info["model"], state.model
    return read_metadata(path), load_file(str(path))


def load_model(path: str | Path, *, map_location: str = "cpu") -> FCN:
    """Rebuild the FCN of a model file (:func:`fcnseg.save`) or a training checkpoint."""
    meta, state = read_weights(path)
    return rebuild(meta, state, path).to(map_location)


# ---------------------------------------------------------------- random number generators


def rng_state(device: torch.device | None = None) -> dict[str, Tensor]:
    """This process's torch, CUDA, NumPy and Python generator states, as tensors."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, words, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
        "numpy_extra": torch.tensor([pos, has_gauss, gauss], dtype=torch.float64),
        "python_words": torch.tensor(words, dtype=torch.int64),
        "python_gauss": torch.tensor([gauss_next is not None, gauss_next or 0.0],
                                     dtype=torch.float64),
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Tensor], device: torch.device | None = None) -> None:
    """Restore the states :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    pos, has_gauss, gauss = state["numpy_extra"].tolist()
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), int(pos),
                         int(has_gauss), gauss))
    has_next, gauss_next = state["python_gauss"].tolist()
    random.setstate((3, tuple(state["python_words"].tolist()),
                     gauss_next if has_next else None))
    if device is not None and device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
