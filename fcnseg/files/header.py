"""The metadata header of fcnseg's safetensors files, read without loading any tensor.

A model file keeps its :class:`~fcnseg.models.ModelMeta` as JSON under :data:`MODEL_KEY`; a
resumable training checkpoint keeps its JSON under :data:`TRAIN_KEY`.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from ..errors import CheckpointError

__all__ = ["MODEL_KEY", "TRAIN_KEY", "read_header", "read_json", "tensor_shape"]

MODEL_KEY = "fcnseg"
TRAIN_KEY = "fcnseg_train"


def read_header(path: str | Path, what: str = "model file") -> dict[str, str]:
    """The string metadata of the safetensors file ``path``; one line for every failure."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such {what}; check the path")
    if path.is_dir():
        raise CheckpointError(
            f"{path}: a folder, not a {what}; name the file (e.g. RUN_DIR/best.safetensors)"
        )
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        reason = (
            "permission denied"
            if exc.errno in (errno.EACCES, errno.EPERM)
            else exc.strerror or str(exc)
        )
        raise CheckpointError(f"{path}: cannot read the {what}: {reason}") from None
    try:
        with safe_open(str(path), framework="pt") as fh:
            return fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: not a safetensors {what} ({exc}); pass a .safetensors file that fcnseg wrote"
        ) from None


def read_json(path: str | Path, header: dict[str, str], key: str) -> Any:
    """The JSON value stored under ``key`` in ``header``."""
    try:
        return json.loads(header[key])
    except (json.JSONDecodeError, TypeError):
        raise CheckpointError(
            f"{path}: its fcnseg metadata is not valid JSON; the file is "
            "damaged: save it again with fcnseg"
        ) from None


def tensor_shape(path: str | Path, name: str) -> tuple[int, ...] | None:
    """The shape of tensor ``name`` in the safetensors file ``path`` (``None``: absent), read
    from the header alone."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            names = set(fh.keys())  # noqa: SIM118  (a safetensors handle, not a dict)
            return tuple(fh.get_slice(name).get_shape()) if name in names else None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a safetensors file ({exc})") from None
