"""Inference engines behind one interface: a :class:`Backend` turns a uint8 batch into
full-resolution class scores, band of rows by band of rows, at a given precision.

:class:`TorchBackend` runs a prepared copy of the FCN (:func:`~.prepare.prepare_network`);
:class:`OnnxBackend` runs the exported graph in ONNX Runtime (fp32, or int8 once quantised);
:class:`OpenVinoBackend` compiles the same graph with OpenVINO (fp32, bf16, int8).
:class:`AutoBackend` holds every installed engine and offers each engine's precisions as
``ENGINE:PRECISION`` candidates, so that calibration (:mod:`.precision`) measures them all
against eager fp32 and keeps the fastest that agrees. Another engine is another class with
these members, added to :func:`make_backend` and :class:`AutoBackend`.

The graph the ONNX engines run is exported once per model and kept (:func:`exported`):
PyTorch's exporter takes half a minute even for a small net, longer than the calibration it
serves, and a second run of the same model must start at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError, FcnsegError
from ..models import FCN, ModelMeta, output_field
from . import precision
from .prepare import Upsampling, prepare_network

if TYPE_CHECKING:
    from ..files.onnx import OnnxModel

__all__ = [
    "BACKENDS",
    "BAND_VALUES",
    "AutoBackend",
    "Backend",
    "GRAPHS_KEPT",
    "OnnxBackend",
    "OpenVinoBackend",
    "TorchBackend",
    "exported",
    "installed_engines",
    "make_backend",
]

ENGINES = ("torch", "onnxruntime", "openvino")
BACKENDS = ("auto", *ENGINES)
# Full-resolution scores are formed this many values at a time when only the argmax is kept.
BAND_VALUES = 1 << 21
# Exported graphs kept in the cache folder, the most recently used (a VGG16's is 0.5 GB).
GRAPHS_KEPT = 4

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

    name = "torch"

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

    name = "onnxruntime"

    def __init__(self, model: FCN | str | Path | OnnxModel, device: torch.device) -> None:
        self._fp32 = exported(model, device)
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


class OpenVinoBackend:
    """The exported graph compiled by OpenVINO for the CPU: fp32; bf16 by its inference
    precision hint, where the CPU computes bf16 natively; int8 from the QDQ graph of ONNX
    Runtime's static quantisation, which OpenVINO runs with int8 kernels. One compiled model
    per precision, built on first use; the graph's height and width stay dynamic."""

    name = "openvino"

    def __init__(self, model: FCN | str | Path | OnnxModel, device: torch.device) -> None:
        try:
            import openvino
        except ImportError:
            raise ConfigError(
                "backend 'openvino' needs OpenVINO: pip install 'fcnseg[openvino]'"
            ) from None
        if device.type != "cpu":
            raise ConfigError(f"backend 'openvino' runs on the CPU, not {device}; use --device cpu")
        self._graph = exported(model, device)
        self.meta, self.field, self.align = self._graph.meta, self._graph.field, self._graph.align
        self._core = openvino.Core()
        self._compiled: dict[str, object] = {}
        self._int8_graph: OnnxModel | None = None

    def candidates(self, device: torch.device) -> tuple[str, ...]:
        return ("bf16",) if precision.cpu_has_bf16() else ()

    def keep(self, precision: str) -> None:
        self._compiled = {p: c for p, c in self._compiled.items() if p == precision}

    def quantize(self, images: Tensor) -> None:
        """Quantise to int8, the activation ranges calibrated on the uint8 batch ``images``."""
        self._int8_graph = self._graph.quantized(images)
        self._compiled.pop("int8", None)

    def _compile(self, precision: str) -> object:
        if precision not in self._compiled:
            if precision not in ("fp32", "bf16", "int8") or (
                precision == "int8" and self._int8_graph is None
            ):
                raise ConfigError(
                    f"precision {precision} is not available with OpenVINO; use fp32, bf16, "
                    "int8 or auto"
                )
            graph = self._int8_graph if precision == "int8" else self._graph
            hint = {"bf16": "bf16"}.get(precision, "f32")
            self._compiled[precision] = self._core.compile_model(
                str(graph.path), "CPU", {"INFERENCE_PRECISION_HINT": hint}
            )
        return self._compiled[precision]

    def scores(self, images: Tensor, rows: Span, cols: Span, precision: str) -> Iterator[Tensor]:
        compiled = self._compile(precision)
        request = compiled.create_infer_request()
        request.infer({0: self._graph.inputs(images)})
        logits = torch.from_numpy(request.get_output_tensor(0).data.copy())
        logits = logits[..., rows[0] : rows[1], cols[0] : cols[1]]
        band = max(1, BAND_VALUES // max(1, logits[:, :, :1].numel()))
        yield from logits.split(band, dim=-2)


def exported(model: FCN | str | Path | OnnxModel, device: torch.device) -> OnnxModel:
    """The ONNX graph of ``model``: an exported file opened; an FCN exported into the cache
    folder (:func:`~.precision.cache_dir`) on first use and opened from there after, the file
    named by a hash of what the graph depends on (:func:`_graph_key`). A cache that cannot be
    written or read costs a fresh export, never the prediction."""
    from ..files.onnx import OnnxModel, export_onnx

    if isinstance(model, OnnxModel):
        return model
    if not isinstance(model, FCN):
        return OnnxModel(Path(model), device)
    path = _graph_path(model)
    folder = path.parent
    if path.is_file():
        with contextlib.suppress(CheckpointError, OSError):
            graph = OnnxModel(path, device)
            os.utime(path)  # used now: the last to be evicted
            return graph
    try:
        folder.mkdir(parents=True, exist_ok=True)
        export_onnx(model, path, check=False)
    except (OSError, FcnsegError):  # no writable cache: a temporary export, removed after
        return OnnxModel.of(model, device=device)
    graphs = sorted(folder.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in graphs[GRAPHS_KEPT:]:
        with contextlib.suppress(OSError):
            old.unlink()
    return OnnxModel(path, device)


def _graph_path(model: FCN) -> Path:
    """Where :func:`exported` keeps ``model``'s graph."""
    return precision.cache_dir() / "onnx" / f"{_graph_key(model)}.onnx"


def _graph_key(model: FCN) -> str:
    """What an exported graph depends on: the weights, the model's description, and the code
    that traces it (fcnseg's own sources and the versions of the exporter's packages)."""
    about = [precision.weights_digest(model.state_dict()), model.meta.to_json(), _exporter()]
    return hashlib.blake2b(json.dumps(about, default=str).encode(), digest_size=16).hexdigest()


@lru_cache(maxsize=1)
def _exporter() -> list[str]:
    # The sources, not only fcnseg's version: an edited checkout traces a different graph.
    sources = hashlib.blake2b(digest_size=16)
    for file in sorted(Path(__file__).parents[1].rglob("*.py")):
        sources.update(file.read_bytes())
    versions = []
    for package in ("torch", "timm", "onnx", "onnxscript"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{package} {importlib.metadata.version(package)}")
    return [sources.hexdigest(), *versions]


def installed_engines() -> tuple[str, ...]:
    """The engines whose packages are installed (torch always)."""
    import importlib.util

    found = [e for e in ENGINES[1:] if importlib.util.find_spec(e) is not None]
    return ("torch", *found)


class AutoBackend:
    """Every installed engine behind one backend: its precisions are ``ENGINE:PRECISION``
    (``"openvino:bf16"``), ``"fp32"`` being the reference, eager PyTorch fp32 (ONNX Runtime's
    for an exported file). Engines are built when first measured; the exported graph is made
    once and shared by ONNX Runtime and OpenVINO."""

    def __init__(self, model: FCN | str | Path, device: torch.device, compile: bool) -> None:
        self.device, self.installed = device, installed_engines()
        self._model = model
        self._graph: OnnxModel | None = None
        self._engines: dict[str, Backend] = {}
        if isinstance(model, FCN):
            self.reference = "torch"
            self._engines["torch"] = TorchBackend(model, device, compile)
        elif "onnxruntime" in self.installed:
            self.reference = "onnxruntime"
        else:
            raise ConfigError(
                f"{model}: an ONNX file needs ONNX Runtime or OpenVINO: pip install 'fcnseg[onnx]'"
            )
        first = self._engine(self.reference)
        self.meta, self.field, self.align = first.meta, first.field, first.align

    def _engine(self, name: str) -> Backend:
        if name not in self._engines:
            if self._graph is None:
                self._graph = exported(self._model, self.device)
            maker = OnnxBackend if name == "onnxruntime" else OpenVinoBackend
            self._engines[name] = maker(self._graph, self.device)
        return self._engines[name]

    def exports(self, candidates: Sequence[str]) -> bool:
        """Whether measuring ``candidates`` first exports the model: an engine of the graph
        among them, and no graph of this model kept from an earlier run (:func:`exported`)."""
        graph_engines = {self.split(c)[0] for c in candidates} - {"torch"}
        if not graph_engines or self._graph is not None or not isinstance(self._model, FCN):
            return False
        return not _graph_path(self._model).is_file()

    def candidates(self, device: torch.device) -> tuple[str, ...]:
        out = [f"{self.reference}:{p}" for p in self._engine(self.reference).candidates(device)]
        if device.type == "cpu":  # the exported graph's engines run on the CPU here
            for name in ("onnxruntime", "openvino"):
                if name in self.installed and name != self.reference:
                    out.append(f"{name}:fp32")
            if "openvino" in self.installed and precision.cpu_has_bf16():
                out.append("openvino:bf16")
        return tuple(out)

    def split(self, choice: str) -> tuple[str, str]:
        """(engine, precision) of a candidate; ``"fp32"`` is the reference engine's."""
        engine, _, arithmetic = choice.rpartition(":")
        return engine or self.reference, arithmetic

    def keep(self, choice: str) -> None:
        engine, arithmetic = self.split(choice)
        kept = self._engine(engine)  # built now if the choice came from the cache
        self._engines = {engine: kept}
        kept.keep(arithmetic)

    def scores(self, images: Tensor, rows: Span, cols: Span, choice: str) -> Iterator[Tensor]:
        engine, arithmetic = self.split(choice)
        return self._engine(engine).scores(images, rows, cols, arithmetic)


def make_backend(
    name: str, model: FCN | str | Path, device: torch.device, *, compile: bool = False
) -> Backend:
    """The backend ``name`` (one of :data:`BACKENDS`) for ``model``."""
    if name not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, not {name!r}")
    if name == "auto":
        return AutoBackend(model, device, compile)
    if name == "onnxruntime":
        return OnnxBackend(model, device)
    if name == "openvino":
        return OpenVinoBackend(model, device)
    if not isinstance(model, FCN):
        raise ConfigError(
            "backend 'torch' needs an FCN; load a model file with fcnseg.load, or "
            "use backend='onnxruntime' for an exported .onnx file"
        )
    return TorchBackend(model, device, compile)
