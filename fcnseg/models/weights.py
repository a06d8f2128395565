"""Reading weight files safely.

Model files are safetensors. A PyTorch pickle (``.pth``) is read only with
``torch.load(weights_only=True)``, which refuses any pickle that would run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from ..errors import CheckpointError

__all__ = ["read_state_dict"]


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors from a ``.safetensors`` file or a weights-only PyTorch file, on the CPU.

    Raises:
        CheckpointError: the file is missing, unreadable, or a pickle that would run code.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weight file; check the path")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError):
        pass  # not safetensors: try a weights-only pickle
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused: this pickle would run code when loaded "
            f"({str(exc).splitlines()[0]}); "
            "use a .safetensors file or a plain state dict saved with torch.save"
        ) from None
    except Exception as exc:
        raise CheckpointError(
            f"{path}: not a weight file ({type(exc).__name__}); "
            "expected .safetensors or a PyTorch state dict"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint that wraps its weights
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path}: holds no state dict of tensors; expected .safetensors or a PyTorch state dict"
        )
    return state
