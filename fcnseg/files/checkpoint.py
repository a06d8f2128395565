"""The resumable training checkpoint's file format: one safetensors file, no pickle.

``RUN_DIR/last.safetensors`` holds the model's tensors (``model/<name>``), the optimiser's
state tensors flattened (``optimizer/<param>/<key>``), the moving average of the weights if
the run keeps one (``average/<name>``), and each process's random-number generator states
(``rng/<rank>/<generator>``). The rest — the model's metadata and the training state's JSON
fields (see :class:`fcnseg.training.state.TrainState`) — is JSON in the file's metadata. It
is written atomically, so a kill mid-write leaves the previous checkpoint whole. What goes in
is the training package's business; this module only lays it out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..errors import CheckpointError
from .atomic import atomic_write
from .header import TRAIN_KEY, read_header, read_json

__all__ = ["CheckpointContents", "read_checkpoint", "write_checkpoint"]

FORMAT = 1


@dataclass
class CheckpointContents:
    """A checkpoint's parts: tensors by owner, and the JSON ``info`` (``model`` holds the
    model's metadata); ``average`` is empty for a run without one."""

    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    rng: dict[int, dict[str, Tensor]]
    info: dict[str, Any]
    average: dict[str, Tensor] = field(default_factory=dict)


def write_checkpoint(path: str | Path, contents: CheckpointContents) -> None:
    """Write ``contents`` to ``path`` atomically."""
    tensors = {
        f"{owner}/{k}": v.detach().cpu().contiguous()
        for owner, part in (("model", contents.model), ("average", contents.average))
        for k, v in part.items()
    }
    opt = contents.optimizer
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in opt["state"].items():
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer/{index}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    for rank, states in contents.rng.items():
        tensors.update({f"rng/{rank}/{k}": v.cpu().contiguous() for k, v in states.items()})
    meta = {
        **contents.info,
        "format": FORMAT,
        "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars},
    }
    header = {TRAIN_KEY: json.dumps(meta)}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def read_checkpoint(path: str | Path) -> CheckpointContents:
    """Read a checkpoint written by :func:`write_checkpoint`."""
    path = Path(path)
    header = read_header(path, "training checkpoint")
    if TRAIN_KEY not in header:
        raise CheckpointError(
            f"{path}: not a resumable training checkpoint; --resume reads the "
            "last.safetensors that `fcnseg train` writes in its run directory"
        )
    info = read_json(path, header, TRAIN_KEY)
    try:
        tensors = load_file(str(path))
        # Weights by name (the model's, the average's); the rest by owner, then name.
        weights: dict[str, dict[str, Tensor]] = {"model": {}, "average": {}}
        state: dict[int, dict[str, Any]] = {}
        rng: dict[int, dict[str, Tensor]] = {}
        for name, value in tensors.items():
            kind, _, rest = name.partition("/")
            if kind in weights:
                weights[kind][rest] = value
            elif kind in ("optimizer", "rng"):
                owner, key = rest.split("/", 1)
                (state if kind == "optimizer" else rng).setdefault(int(owner), {})[key] = value
        saved = info.pop("optimizer")
        for index, values in saved["scalars"].items():
            state.setdefault(int(index), {}).update(values)
    except (KeyError, ValueError, TypeError, AttributeError, OSError, SafetensorError) as exc:
        raise CheckpointError(
            f"{path}: damaged training checkpoint ({exc}); resume from an "
            "earlier copy or start the run again"
        ) from None
    optimizer = {"state": state, "param_groups": saved["param_groups"]}
    return CheckpointContents(
        model=weights["model"], optimizer=optimizer, rng=rng, info=info, average=weights["average"]
    )
