"""One file per model: weights and what it takes to rebuild them, in safetensors.

The file's metadata holds the typed :class:`~fcnseg.models.ModelMeta` (variant, backbone,
geometry, classes, palette, input normalisation…), so :func:`load` needs nothing else. No pickle
is involved; writes are atomic. :func:`load` also takes a resumable training checkpoint
(``last.safetensors``) and rebuilds its model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import Tensor

from ..errors import CheckpointError, ConfigError
from ..models import FCN, ModelMeta, build_fcn
from .atomic import atomic_write
from .checkpoint import read_checkpoint
from .header import MODEL_KEY, TRAIN_KEY, read_header, read_json, tensor_shape
from .hub import locate

__all__ = ["load", "read_metadata", "read_weights", "rebuild", "save"]


def save(model: FCN, path: str | Path, **metadata: Any) -> None:
    """Save ``model`` to one ``.safetensors`` file with the metadata needed to rebuild it.

    The model is left as it was: ``metadata`` goes to the file only.

    Args:
        model: the FCN.
        path: destination file.
        **metadata: :class:`~fcnseg.models.ModelMeta` fields to set (``classes``,
            ``palette``, ``ignore_index``) and anything JSON-serialisable to keep with it
            (training scores, epoch).

    Raises:
        ConfigError: a metadata value of the wrong type, or not JSON-serialisable.
        FcnsegError: the file cannot be written.
    """
    meta = model.meta.with_(**metadata)
    try:
        header = {MODEL_KEY: json.dumps(meta.to_json())}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"save(): metadata must be plain JSON values ({exc})") from None
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=header))


def read_metadata(path: str | Path) -> ModelMeta:
    """The metadata of a model file or training checkpoint, checked, without its weights.
    ``path`` may be an ``hf://`` or ``https://`` address (:mod:`.hub`)."""
    path = locate(path)
    return _metadata(path, read_header(path))


def _metadata(path: str | Path, header: dict[str, str]) -> ModelMeta:
    if TRAIN_KEY in header:
        data = read_json(path, header, TRAIN_KEY)
        data = data.get("model") if isinstance(data, dict) else None
    elif MODEL_KEY in header:
        data = read_json(path, header, MODEL_KEY)
    else:
        raise CheckpointError(
            f"{path}: a safetensors file but not an fcnseg model (no fcnseg "
            "metadata); save models with fcnseg.save"
        )
    meta = ModelMeta.from_json(data, source=str(path))
    # The class count sizes the score layers: check it against the weights before anything is
    # built, so that a damaged count is one line, not an allocation of its size.
    prefix = "model/" if TRAIN_KEY in header else ""
    for name, part in meta.head_slices():
        key = f"score_fr_{name}.weight" if name else "score_fr.weight"
        shape = tensor_shape(path, prefix + key)
        count = part.stop - part.start
        if shape is None or shape[0] != count:
            found = f"no {key}" if shape is None else f"{key} for {shape[0]}"
            raise CheckpointError(
                f"{path}: its metadata says {count} classes but the "
                f"file holds {found}; the file is damaged: save it again"
            )
    return meta


def read_weights(path: str | Path) -> tuple[ModelMeta, dict[str, Tensor]]:
    """The metadata and weights of a model file or a training checkpoint (or its address)."""
    path = locate(path)
    header = read_header(path)
    meta = _metadata(path, header)
    if TRAIN_KEY in header:
        return meta, read_checkpoint(path).model
    try:
        return meta, load_file(str(path))
    except Exception as exc:  # safetensors reports a damaged body with its own types
        raise CheckpointError(
            f"{path}: the weights cannot be read ({exc}); the file is damaged: save it again"
        ) from None


def rebuild(meta: ModelMeta, state: dict[str, Tensor], path: str | Path) -> FCN:
    """The FCN that ``meta`` describes, with ``state`` loaded."""
    model = build_fcn(
        meta.variant,
        num_classes=dict(meta.heads) if meta.heads else meta.num_classes,
        backbone=meta.backbone,
        geometry=meta.geometry,
        at_once=meta.at_once,
        in_channels=meta.in_channels,
    )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise CheckpointError(
            f"{path}: weights do not fit the model its metadata describes ({first})"
        ) from None
    model.meta = meta
    return model


def load(path: str | Path, *, map_location: str = "cpu") -> FCN:
    """Rebuild the FCN of a model file (:func:`save`) or of a training checkpoint.

    ``path`` may also be an address, ``hf://OWNER/REPO[/FILE]`` or ``https://…[#sha256=…]``,
    read through the standard caches (:mod:`fcnseg.files.hub`).
    """
    meta, state = read_weights(path)
    return rebuild(meta, state, path).to(map_location)
