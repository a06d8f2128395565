"""Evaluation (paper §5): pixel accuracy, mean accuracy, mean IU and frequency-weighted IU from
one confusion matrix over the whole set, at each image's full resolution.

* :mod:`.metrics`: the confusion matrix and the four scores;
* :mod:`.evaluate`: scoring a model on a dataset (:func:`evaluate`), the boundary band.

Owns: scoring. May import: models, data, files (for writing results), device.
"""

from .evaluate import as_json, boundary_band, confusion, evaluate, write_json
from .metrics import METRICS, ConfusionMatrix, format_table, plot_confusion

__all__ = [
    "METRICS",
    "ConfusionMatrix",
    "as_json",
    "boundary_band",
    "confusion",
    "evaluate",
    "format_table",
    "plot_confusion",
    "write_json",
]
