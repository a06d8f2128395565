"""What the :class:`~.predictor.Predictor` writes for each pixel: its class index (uint8 for up
to 256 classes, else int64), or the softmax probabilities of every class. A net of several
heads (§5, SIFT Flow) gives one class index per head, and each head's probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.bands import Raster
from ..models import ModelMeta
from ..models.decision import labels

__all__ = ["Output"]


@dataclass(frozen=True)
class Output:
    """Labels (``probabilities=False``; for a two-class model, by a ``threshold`` on the
    foreground's probability if given) or class probabilities of ``dtype``, for the heads
    (``parts``, each head's channels of the scores) of a model."""

    parts: tuple[slice, ...]
    probabilities: bool = False
    dtype: torch.dtype = torch.float32
    threshold: float | None = None

    @classmethod
    def of_model(
        cls,
        meta: ModelMeta,
        probabilities: bool = False,
        dtype: torch.dtype = torch.float32,
        threshold: float | None = None,
    ) -> Output:
        return cls(tuple(part for _, part in meta.head_slices()), probabilities, dtype, threshold)

    @property
    def num_classes(self) -> int:
        return self.parts[-1].stop

    @property
    def label_dtype(self) -> torch.dtype:
        widest = max(part.stop - part.start for part in self.parts)
        return torch.uint8 if widest <= 256 else torch.int64

    @property
    def out_dtype(self) -> torch.dtype:
        """The type of what is written: probabilities' ``dtype``, or the labels'."""
        return self.dtype if self.probabilities else self.label_dtype

    def shape(self, image: Tensor | Raster) -> tuple[int, ...]:
        """The output's shape for one image …×H×W: H×W (heads×H×W for several), or C×H×W."""
        size = tuple(image.shape[-2:])
        if self.probabilities:
            return (self.num_classes, *size)
        return size if len(self.parts) == 1 else (len(self.parts), *size)

    def empty(self, images: Tensor) -> Tensor:
        """Room for the outputs of a batch N×C×H×W."""
        return torch.empty((len(images), *self.shape(images[0])), dtype=self.out_dtype)

    def of(self, scores: Tensor) -> Tensor:
        """The output of fp32 scores N×C×h×w."""
        if self.probabilities:
            if len(self.parts) == 1:
                return scores.softmax(1)
            return torch.cat([scores[:, part].softmax(1) for part in self.parts], 1)
        if len(self.parts) == 1:
            return labels(scores, self.threshold)
        return torch.stack([labels(scores[:, part]) for part in self.parts], 1)
