"""fcnseg: Fully Convolutional Networks for semantic segmentation (Long, Shelhamer, Darrell).

Each part of the paper has its module: :mod:`~fcnseg.geometry` (§3.1 receptive fields),
:mod:`~fcnseg.convolutionalization` (§3.1), :mod:`~fcnseg.shift_stitch` (§3.2),
:mod:`~fcnseg.upsampling` (§3.3), :mod:`~fcnseg.backbones` (§4.1), :mod:`~fcnseg.models`
(§4.2 skip architecture), :mod:`~fcnseg.metrics` (§5).
"""

from .checkpoint import load, save
from .config import TrainConfig
from .convolutionalization import convolutionalize
from .evaluate import evaluate
from .geometry import Field, receptive_field
from .inference import Predictor
from .models import FCN, Normalization, fcn8s, fcn16s, fcn32s
from .predict import predict
from .reference import load_reference
from .shift_stitch import shift_and_stitch
from .train import train

# ``predict``, ``train`` and ``evaluate`` name the functions; their modules stay importable
# (``from fcnseg.train import init_from``).
__all__ = [
    "FCN", "Field", "Normalization", "Predictor", "TrainConfig", "convolutionalize", "evaluate",
    "fcn8s", "fcn16s", "fcn32s", "load", "load_reference", "predict", "receptive_field", "save",
    "shift_and_stitch", "train",
]
__version__ = "0.1.0"
