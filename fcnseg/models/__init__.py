"""Models (paper §4): backbones convolutionalized (§4.1) and the skip architecture (§4.2).

* :mod:`.backbones`: classification nets with taps at strides 8, 16 and 32, by name;
* :mod:`.fcn`: the one :class:`FCN` class that fuses any list of taps (FCN-32s/16s/8s);
* :mod:`.builders`: ``fcn32s``, ``fcn16s``, ``fcn8s`` (and the finer ``fcn4s``, ``fcn2s``,
  ``fcn1s``), registered in :data:`MODELS`;
* :mod:`.meta`: :class:`ModelMeta`, what a model file stores beside the weights;
* :mod:`.decision`: scores to labels, the argmax or a two-class threshold;
* :mod:`.normalization`, :mod:`.weights`: input normalisation; safe weight-file reading.

Owns: network construction. May import: :mod:`fcnseg.blocks`, the registry and errors.
"""

from .backbones import BACKBONES, Backbone, adapt_input, build_backbone, list_backbones
from .builders import MODELS, build_fcn, fcn1s, fcn2s, fcn4s, fcn8s, fcn16s, fcn32s, list_models
from .fcn import FCN, Crop, HeadView, output_field, pad_to_stride, tap_name
from .meta import ModelMeta
from .normalization import Normalization

__all__ = [
    "BACKBONES",
    "FCN",
    "MODELS",
    "Backbone",
    "Crop",
    "HeadView",
    "ModelMeta",
    "Normalization",
    "adapt_input",
    "build_backbone",
    "build_fcn",
    "fcn1s",
    "fcn2s",
    "fcn4s",
    "fcn8s",
    "fcn16s",
    "fcn32s",
    "list_backbones",
    "list_models",
    "output_field",
    "pad_to_stride",
    "tap_name",
]
