"""What the :class:`~.predictor.Predictor` writes for each pixel: its class index (uint8 for up
to 256 classes, else int64), or the softmax probabilities of every class."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.bands import Raster

__all__ = ["Output"]


@dataclass(frozen=True)
class Output:
    """Labels (``probabilities=False``) or class probabilities of ``dtype``."""

    num_classes: int
    probabilities: bool = False
    dtype: torch.dtype = torch.float32

    @property
    def label_dtype(self) -> torch.dtype:
        return torch.uint8 if self.num_classes <= 256 else torch.int64

    @property
    def out_dtype(self) -> torch.dtype:
        """The type of what is written: probabilities' ``dtype``, or the labels'."""
        return self.dtype if self.probabilities else self.label_dtype

    def shape(self, image: Tensor | Raster) -> tuple[int, ...]:
        """The output's shape for one image …×H×W: H×W, or C×H×W."""
        size = tuple(image.shape[-2:])
        return (self.num_classes, *size) if self.probabilities else size

    def empty(self, images: Tensor) -> Tensor:
        """Room for the outputs of a batch N×3×H×W."""
        return torch.empty((len(images), *self.shape(images[0])), dtype=self.out_dtype)

    def of(self, scores: Tensor) -> Tensor:
        """The output of fp32 scores N×C×h×w."""
        if self.probabilities:
            return scores.softmax(1)
        return scores.max(1).indices  # the first maximum, as argmax, several times faster
