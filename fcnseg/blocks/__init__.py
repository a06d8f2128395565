"""The paper's building blocks (§3), each one module, each readable beside its section.

* :mod:`~fcnseg.blocks.geometry`: receptive fields, strides and crop offsets by the composition
  rule ``f_ks ∘ g_k's' = (f∘g)_{k'+(k-1)s', ss'}`` (§3.1);
* :mod:`~fcnseg.blocks.convolutionalization`: fully connected layers as convolutions (§3.1);
* :mod:`~fcnseg.blocks.shift_stitch`: shift-and-stitch as filter rarefaction (§3.2);
* :mod:`~fcnseg.blocks.upsampling`: backwards strided convolution, bilinear at start (§3.3).

Owns: layer-level mathematics. May import: torch and :mod:`fcnseg.errors` only.
"""

from .convolutionalization import convolutionalize
from .geometry import IDENTITY, Field, GeometryError, crop_offset, layer_field, receptive_field
from .shift_stitch import shift_and_stitch
from .upsampling import FixedUpsample, bilinear_kernel, learned_upsample

__all__ = [
    "IDENTITY",
    "Field",
    "FixedUpsample",
    "GeometryError",
    "bilinear_kernel",
    "convolutionalize",
    "crop_offset",
    "layer_field",
    "learned_upsample",
    "receptive_field",
    "shift_and_stitch",
]
