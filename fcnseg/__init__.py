"""fcnseg: Fully Convolutional Networks for semantic segmentation (Long, Shelhamer, Darrell).

The package is laid out as the paper and the jobs are (docs/architecture.md):
:mod:`~fcnseg.blocks` (§3), :mod:`~fcnseg.models` (§4), :mod:`~fcnseg.data`,
:mod:`~fcnseg.training` (§3.4, §4.3), :mod:`~fcnseg.evaluation` (§5),
:mod:`~fcnseg.inference`, :mod:`~fcnseg.files`, :mod:`~fcnseg.cli` and :mod:`~fcnseg.demo`.

The public names below are imported on first use, so that ``import fcnseg`` (and the
``fcnseg --help`` that imports it) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# Public name → the module that defines it.
_PUBLIC = {
    "FCN": "fcnseg.models",
    "ModelMeta": "fcnseg.models",
    "Normalization": "fcnseg.models",
    "build_fcn": "fcnseg.models",
    "fcn1s": "fcnseg.models",
    "fcn2s": "fcnseg.models",
    "fcn4s": "fcnseg.models",
    "fcn8s": "fcnseg.models",
    "fcn16s": "fcnseg.models",
    "fcn32s": "fcnseg.models",
    "list_backbones": "fcnseg.models",
    "list_models": "fcnseg.models",
    "Field": "fcnseg.blocks",
    "convolutionalize": "fcnseg.blocks",
    "receptive_field": "fcnseg.blocks",
    "shift_and_stitch": "fcnseg.blocks",
    "list_datasets": "fcnseg.data",
    "import_caffe": "fcnseg.files",
    "load": "fcnseg.files",
    "load_reference": "fcnseg.files",
    "save": "fcnseg.files",
    "TrainConfig": "fcnseg.training",
    "train": "fcnseg.training",
    "evaluate": "fcnseg.evaluation",
    "Predictor": "fcnseg.inference",
    "predict": "fcnseg.inference",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'fcnseg' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
