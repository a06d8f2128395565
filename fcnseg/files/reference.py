"""The reference nets' weights: Caffe's VGG16 FCNs and the PyTorch port that mirrors them.

Their state dicts name layers as the prototxts do (``conv1_1.weight`` … ``fc7``, ``score_fr``,
``score_pool4``, ``upscore2``, ``upscore8``…). :func:`load_reference` builds the
``geometry="caffe"`` FCN, whose crops the geometry module computes to the prototxts' values,
and loads such a state dict strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from ..errors import CheckpointError
from ..models import FCN, build_fcn
from ..models.weights import read_state_dict

__all__ = ["load_reference"]


def _reference_key(own_key: str) -> str:
    return own_key.removeprefix("backbone.")


def load_reference(state_dict: Mapping[str, Tensor] | str | Path, *, variant: str = "fcn8s") -> FCN:
    """Build the reference VGG16 FCN (``geometry="caffe"``) and load reference-named weights.

    Args:
        state_dict: tensors named as the reference nets, or the path of such a file
            (``.safetensors``, or a weights-only PyTorch file).
        variant: ``"fcn32s"``, ``"fcn16s"`` or ``"fcn8s"``.

    Raises:
        CheckpointError: a tensor is missing, unexpected or of the wrong shape (named).
    """
    source = str(state_dict) if isinstance(state_dict, (str, Path)) else "state dict"
    state = read_state_dict(state_dict) if isinstance(state_dict, (str, Path)) else state_dict
    if "score_fr.weight" not in state:
        raise CheckpointError(f"{source}: no score_fr.weight; not a reference FCN state dict")
    model = build_fcn(
        variant, num_classes=state["score_fr.weight"].shape[0], backbone="vgg16", geometry="caffe"
    )
    own = model.state_dict()
    final = f"{model.final}.weight"
    wanted = {_reference_key(k): k for k in own}
    missing = [k for k in wanted if k not in state]
    extra = [k for k in state if k not in wanted]
    if missing or extra:
        what = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
        raise CheckpointError(
            f"{source}: {what} for the reference {variant}; "
            f"pass the {variant} weights, or variant= the net they belong to"
        )
    loaded = {}
    for ref, key in wanted.items():
        tensor = state[ref]
        if key == final:
            tensor = per_class_kernel(tensor, own[key], source, ref)
        if tensor.shape != own[key].shape:
            raise CheckpointError(
                f"{source}: {ref} is {tuple(tensor.shape)}, expected "
                f"{tuple(own[key].shape)} for the reference {variant}"
            )
        loaded[key] = tensor
    model.load_state_dict(loaded)
    return model


def per_class_kernel(tensor: Tensor, own: Tensor, source: str, name: str) -> Tensor:
    """The reference stores the fixed final upsampling as a C×C×k×k kernel that is zero off
    the diagonal; :class:`FixedUpsample` keeps only the diagonal."""
    c = own.shape[0]
    if tensor.dim() != 4 or tensor.shape[:2] != (c, c):
        return tensor  # the shape check names it
    idx = torch.arange(c)
    diagonal = tensor[idx, idx].unsqueeze(1)
    off = tensor.clone()
    off[idx, idx] = 0
    if off.abs().max() > 0:
        raise CheckpointError(
            f"{source}: {name} mixes classes; the final upsampling must be "
            "per class (fixed bilinear), as in the reference nets"
        )
    return diagonal
