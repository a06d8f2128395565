"""Inference engines behind one interface: a :class:`Backend` turns a uint8 batch into
full-resolution class scores, band of rows by band of rows, at a given precision.

:class:`TorchBackend` runs a prepared copy of the FCN (:func:`~.prepare.prepare_network`);
:class:`OnnxBackend` runs the exported graph in ONNX Runtime (fp32, or int8 once quantised).
Another engine is another class with these members, added to :func:`make_backend`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..models import FCN, ModelMeta, output_field
from . import precision
from .prepare import Upsampling, prepare_network

__all__ = ["BACKENDS", "BAND_VALUES", "Backend", "OnnxBackend", "TorchBackend", "make_backend"]

BACKENDS = ("torch", "onnxruntime")
# Full-resolution scores are formed this many values at a time when only the argmax is kept.
BAND_VALUES = 1 << 21

Span = tuple[int, int]


class Backend(Protocol):
    """What the :class:`~.predictor.Predictor` needs of an engine."""

    meta: ModelMeta
    field: float  # receptive field of an output pixel, in pixels (§3.1)
    align: int  # the output stride: tiles start on its multiples

    def candidates(self, device: torch.device) -> tuple[str, ...]:
        """The reduced precisions ``auto`` may choose among on ``device``."""

    def scores(self, images: Tensor, rows: Span, cols: Span, precision: str) -> Iterator[Tensor]:
        """fp32 scores N×C×rows×cols of a uint8 batch N×3×H×W, in bands of rows."""

    def keep(self, precision: str) -> None:
        """Drop whatever was built for the precisions other than ``precision``."""


class TorchBackend:
    """The FCN in PyTorch, one prepared copy per precision, built on first use."""

    def __init__(self, model: FCN, device: torch.device, compile: bool = False) -> None:
        self.model, self.device, self.compile = model, device, compile
        self.meta = model.meta
        self.field, self.align = output_field(model), max(model.backbone.taps)
        self._nets: dict[str, tuple[nn.Module, Upsampling | None]] = {}

    def candidates(self, device: torch.device) -> tuple[str, ...]:
        return precision.auto_candidates(device)  # looked up now: tests may replace it

    def keep(self, precision: str) -> None:
        self._nets = {p: n for p, n in self._nets.items() if p == precision}

    def scores(self, images: Tensor, rows: Span, cols: Span, precision: str) -> Iterator[Tensor]:
        if precision not in self._nets:
            self._nets[precision] = prepare_network(
                self.model, precision=precision, device=self.device, compile=self.compile
            )
        net, up = self._nets[precision]
        # Layout first, on the uint8 image: the normalisation then writes channels-last floats.
        x = images.to(self.device).contiguous(memory_format=torch.channels_last)
        x = self.model.normalization(x).contiguous(memory_format=torch.channels_last)
        scores = net(x).float()
        if up is None:
            yield scores[..., rows[0] : rows[1], cols[0] : cols[1]]
            return
        scores = scores.contiguous()
        per_row = scores.shape[0] * scores.shape[1] * (cols[1] - cols[0])
        band = max(1, BAND_VALUES // per_row)
        b = up.matrix(scores.shape[-1], *cols, scores.device)
        wide = scores @ b.T  # N×C×h×cols: the columns once, then band by band of rows
        for top in range(rows[0], rows[1], band):
            a = up.matrix(scores.shape[-2], top, min(top + band, rows[1]), scores.device)
            yield a @ wide


class OnnxBackend:
    """The exported graph in ONNX Runtime; int8 after :meth:`quantize`."""

    def __init__(self, model: FCN | str | Path, device: torch.device) -> None:
        from ..files.onnx import OnnxModel

        self._fp32 = OnnxModel.of(model, device=device)
        self._int8 = None
        self.meta, self.field, self.align = self._fp32.meta, self._fp32.field, self._fp32.align

    def candidates(self, device: torch.device) -> tuple[str, ...]:
        return ()  # the exported graph is fp32; int8 only when asked for

    def keep(self, precision: str) -> None:
        if precision != "int8":
            self._int8 = None

    def quantize(self, images: Tensor) -> None:
        """Quantise to int8, the activation ranges calibrated on the uint8 batch ``images``."""
        self._int8 = self._fp32.quantized(images)

    def scores(self, images: Tensor, rows: Span, cols: Span, precision: str) -> Iterator[Tensor]:
        session = self._int8 if precision == "int8" else self._fp32
        if session is None or precision not in ("fp32", "int8"):
            raise ConfigError(
                f"precision {precision} is not available with ONNX Runtime; use fp32, int8 or auto"
            )
        logits = session(images)[..., rows[0] : rows[1], cols[0] : cols[1]]
        band = max(1, BAND_VALUES // max(1, logits[:, :, :1].numel()))
        yield from logits.split(band, dim=-2)


def make_backend(
    name: str, model: FCN | str | Path, device: torch.device, *, compile: bool = False
) -> TorchBackend | OnnxBackend:
    """The backend ``name`` (one of :data:`BACKENDS`) for ``model``."""
    if name not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, not {name!r}")
    if name == "onnxruntime":
        return OnnxBackend(model, device)
    if not isinstance(model, FCN):
        raise ConfigError(
            "backend 'torch' needs an FCN; load a model file with fcnseg.load, or "
            "use backend='onnxruntime' for an exported .onnx file"
        )
    return TorchBackend(model, device, compile)
