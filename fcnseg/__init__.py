"""fcnseg: Fully Convolutional Networks for semantic segmentation (Long, Shelhamer, Darrell).

Each part of the paper has its module: :mod:`~fcnseg.geometry` (§3.1 receptive fields),
:mod:`~fcnseg.convolutionalization` (§3.1), :mod:`~fcnseg.shift_stitch` (§3.2),
:mod:`~fcnseg.upsampling` (§3.3), :mod:`~fcnseg.backbones` (§4.1), :mod:`~fcnseg.models`
(§4.2 skip architecture), :mod:`~fcnseg.metrics` (§5).
"""

from .checkpoint import load, save
from .convolutionalization import convolutionalize
from .geometry import Field, receptive_field
from .models import FCN, Normalization, fcn8s, fcn16s, fcn32s
from .reference import load_reference
from .shift_stitch import shift_and_stitch

__all__ = [
    "FCN", "Field", "Normalization", "convolutionalize", "fcn8s", "fcn16s", "fcn32s", "load",
    "load_reference", "receptive_field", "save", "shift_and_stitch",
]
__version__ = "0.1.0"

# Inference (§3, whole-image inference in one pass): fast, tiled, any image size.
from .inference import Predictor  # noqa: E402
from .predict import predict  # noqa: E402  (the function; the module stays fcnseg.predict)

__all__ += ["Predictor", "predict"]

# Training (§3.4, §4.3) and evaluation (§5). As with predict, the names are the functions; the
# modules stay importable as fcnseg.train and fcnseg.evaluate.
from .config import TrainConfig  # noqa: E402
from .evaluate import evaluate  # noqa: E402
from .train import train  # noqa: E402

__all__ += ["TrainConfig", "evaluate", "train"]
