"""Inference: segment images of any size, fast, with the same answer as the model.

* :mod:`.predictor`: the :class:`Predictor` facade (inputs, batching by size, whole or tiled);
* :mod:`.backends`: the engines (PyTorch, ONNX Runtime) behind one interface;
* :mod:`.prepare`: network preparation for speed (:func:`prepare_network`);
* :mod:`.precision`: the precision choice, measured (:class:`Calibration`);
* :mod:`.tiling`: the tiling plan, from the receptive field (§3.1);
* :mod:`.inputs`, :mod:`.outputs`: what counts as an image; what is written per pixel.

Owns: running a trained model. May import: models, data's decoding, files (ONNX), device.
"""

from __future__ import annotations

import numpy as np

from ..device import cpu_has_bf16, cpu_has_fp16
from ..models import FCN
from .inputs import ImageLike, as_image_tensor
from .precision import Calibration
from .predictor import Predictor
from .prepare import CoarseScores, Upsampling, fold_batchnorm, prepare_network
from .tiling import TilePlan, tile_windows

__all__ = [
    "Calibration",
    "CoarseScores",
    "ImageLike",
    "Predictor",
    "TilePlan",
    "Upsampling",
    "as_image_tensor",
    "cpu_has_bf16",
    "cpu_has_fp16",
    "fold_batchnorm",
    "predict",
    "prepare_network",
    "tile_windows",
]


def predict(model: FCN, image: ImageLike, **options: object) -> np.ndarray:
    """The class mask of one image: H×W uint8 (int64 beyond 256 classes).

    ``image`` is a PIL image, a uint8 H×W×3 array or a uint8 3×H×W tensor. ``options`` go to
    :class:`Predictor` (``precision``, ``device``, ``tile``…). To segment many images, make one
    :class:`Predictor` and call it: it is built once.
    """
    return Predictor(model, **options)(image).numpy()
