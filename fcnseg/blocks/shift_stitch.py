"""Shift-and-stitch, the dense-output trick of §3.2.

A net with output stride ``f`` sees the input only every ``f`` pixels. Shifting the input by
each ``(dx, dy)`` with ``0 ≤ dx, dy < f`` and interlacing the ``f²`` coarse outputs gives a
prediction at every pixel. The paper shows this equals *filter rarefaction*: dilating the
filters after each subsampling layer by its stride and removing the stride. fcnseg's FCNs use
learned upsampling instead (§3.3), which the paper found more effective; this is here to read
and to check the equivalence.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["shift_and_stitch"]


@torch.no_grad()
def shift_and_stitch(model: nn.Module, x: Tensor, factor: int) -> Tensor:
    """Dense output of ``model`` (output stride ``factor``) on ``x`` by §3.2.

    Args:
        model: maps N×C×H×W to N×K×h×w with output position ``i`` centred on input ``i·factor``.
        x: the input batch.
        factor: the model's output stride.

    Returns:
        N×K×L×M where output ``(i·factor + dy, j·factor + dx)`` is the coarse output ``(i, j)``
        on the input shifted by ``(dy, dx)``; ``L`` and ``M`` cover every densely computed row
        and column.
    """
    outputs = {(dy, dx): model(x[..., dy:, dx:]) for dy in range(factor) for dx in range(factor)}
    # The first position a shift leaves uncomputed bounds the dense map.
    rows = min(dy + out.shape[-2] * factor for (dy, _), out in outputs.items())
    cols = min(dx + out.shape[-1] * factor for (_, dx), out in outputs.items())
    first = outputs[0, 0]
    dense = first.new_zeros(*first.shape[:-2], rows, cols)
    for (dy, dx), out in outputs.items():
        h, w = len(range(dy, rows, factor)), len(range(dx, cols, factor))
        dense[..., dy::factor, dx::factor] = out[..., :h, :w]
    return dense
