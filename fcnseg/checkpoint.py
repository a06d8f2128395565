"""One file per model: weights and what it takes to rebuild them, in safetensors.

The file's metadata holds the variant, backbone, geometry, class names, palette and input
normalisation, so ``fcnseg.load(path)`` needs nothing else. No pickle is involved.
Writes are atomic: a temporary file, fsync, then rename, so a kill never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .backbones import Normalization
from .errors import CheckpointError
from .models import FCN, build_fcn

__all__ = ["atomic_write", "load", "read_metadata", "rebuild", "save"]

_KEY = "fcnseg"

# The process's umask, read once at import (reading it means setting it, which is not
# thread-safe); new files get mode 0666 less it.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, and rename it over
    ``path``: readers see the old file or the new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        # mkstemp (and safetensors) make the file private (0600); give it the mode a new file
        # gets (0666 less the umask), so that others may read the model as before.
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(model: FCN, path: str | Path, **metadata: object) -> None:
    """Save ``model`` to one ``.safetensors`` file with the metadata needed to rebuild it.

    Args:
        model: the FCN.
        path: destination file.
        **metadata: anything JSON-serialisable to keep with it, e.g. ``classes``,
            ``palette``, ``ignore_index``, training scores.
    """
    meta = {**model.meta, **metadata, "normalization": model.normalization.to_dict()}
    model.meta.update(metadata)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={_KEY: json.dumps(meta)}))


def read_metadata(path: str | Path) -> dict:
    """The fcnseg metadata of a saved model, without loading its weights."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file; check the path")
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(_KEY)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a safetensors model file ({exc})") from None
    if raw is None:
        raise CheckpointError(f"{path}: a safetensors file but not an fcnseg model "
                              "(no fcnseg metadata); save models with fcnseg.save")
    return json.loads(raw)


def load(path: str | Path, *, map_location: str = "cpu") -> FCN:
    """Rebuild the FCN saved at ``path`` by :func:`save`, weights and metadata."""
    return rebuild(read_metadata(path), load_file(str(path)), path).to(map_location)


def rebuild(meta: dict, state: dict, path: str | Path) -> FCN:
    """The FCN that ``meta`` (as :func:`save` writes it) describes, with ``state`` loaded."""
    model = build_fcn(meta["variant"], num_classes=meta["num_classes"],
                      backbone=meta["backbone"], geometry=meta["geometry"],
                      at_once=meta.get("at_once", False))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise CheckpointError(f"{path}: weights do not fit the model its metadata describes "
                              f"({first})") from None
    model.normalization = Normalization.from_dict(meta["normalization"])
    model.meta = {k: v for k, v in meta.items() if k != "normalization"}
    return model
