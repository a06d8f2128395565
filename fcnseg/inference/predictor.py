"""The :class:`Predictor`: whole-image inference in one pass (paper §3), fast, and tiled for
images too large for memory.

An FCN takes an image of any size and returns scores for every pixel in one forward pass. The
predictor keeps that property. It is a small facade: it takes images in any accepted form
(:mod:`.inputs`), batches those of one size, and sends each image whole or tile by tile
(:mod:`.tiling`) to a backend (:mod:`.backends`) at the precision calibration chose
(:mod:`.precision`). When only the class map is wanted, full-resolution scores exist a band of
rows at a time, never as a whole float map; a raster file is read one tile at a time.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data.bands import Raster
from ..device import resolve_device
from ..errors import ConfigError
from ..models import FCN, ModelMeta
from ..models.decision import check_threshold
from ..models.meta import MAGNIFY, is_working_scale
from ..models.tta import tta_scales, tta_scores, views
from . import precision as calibration
from .backends import AutoBackend, make_backend
from .inputs import ImageLike, as_image_tensor, check_batch
from .outputs import Output
from .tiling import UNBOUNDED, TilePlan

__all__ = ["CPU_PASS_PIXELS", "Predictor"]

# On CPU a batch runs in passes of at most this many pixels: beyond it the activations outgrow
# the caches and images/s fall. Measured on 2 Xeon cores, FCN-8s Lite0 on 8 CamVid frames
# (360×480) in passes of 1, 2, 4 and 8 images: bf16 28.1, 34.8, 35.3, 30.8 img/s; fp32 21.0,
# 24.4, 23.4, 19.6.
CPU_PASS_PIXELS = 4 * 360 * 480

Span = tuple[int, int]


class Predictor:
    """Segment images with an FCN: whole image in one pass, as fast as the hardware allows.

    Args:
        model: the FCN (left untouched: the predictor works on its own copy), or for
            ``backend="onnxruntime"`` an FCN or the path of a model written by ``fcnseg export``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"``, ``"int8"`` or ``"auto"``. ``auto`` (the
            default) tries, on the first image it is given (or the one passed to
            :meth:`calibrate`), each reduced precision the hardware computes natively (bf16 on
            CPUs with AMX or AVX-512 BF16, fp16 on CPUs with AVX-512 FP16, both on GPUs) and
            takes the fastest of fp32 and those that give at least 99.5% of the pixels fp32's
            class. ``int8`` runs ONNX Runtime's static quantisation, calibrated on the first
            batch given (it implies ``backend="onnxruntime"``).
        backend: ``"auto"`` (the default), ``"torch"``, ``"onnxruntime"`` (fp32, or int8) or
            ``"openvino"`` (fp32, bf16, int8). ``auto`` measures every engine installed (ONNX
            Runtime and OpenVINO run fcnseg's own ONNX export) at each precision ``auto``
            allows, on the first image or batch, keeps those whose class map agrees with eager
            fp32 on at least 99.5% of the pixels and takes the fastest; the choice is cached
            per model, machine and input size (``$FCNSEG_CACHE_DIR``, else
            ``~/.cache/fcnseg``), beside the model's ONNX export, so the next run starts at
            once. ``$FCNSEG_BACKEND`` sets another default.
        tile: images with a side longer than this are segmented in overlapping tiles of
            ``tile``×``tile`` pixels; ``None`` never tiles; ``"auto"`` (the default) tiles
            images of more than 4096×4096 pixels in tiles of 2048 or more.
        overlap: pixels shared by neighbouring tiles; by default the receptive field of an
            output pixel, which makes the tiled answer equal to the whole-image one.
        batch_size: images of one size run together, this many at a time (on CPU, at most
            :data:`CPU_PASS_PIXELS` pixels' worth).
        compile: ``torch.compile`` the network (slow to start, per image size).
        tta: test-time augmentation: class probabilities averaged over horizontal flips and
            the scales 0.75, 1 and 1.25 (``True``) or those given; six passes per image (two
            per scale), so about six times the time. Tiles are augmented one by one. A model
            with a working scale (``meta.magnify``) sees every image or tile enlarged by it
            (the TTA scales multiply it), and its tiles agree with the whole image up to the
            rounding of the resized sizes.
        magnify: a working scale to use instead of the model's (``meta.magnify``), in
            :data:`~fcnseg.models.meta.MAGNIFY`.
        threshold: two-class models: a pixel is class 1 where its probability reaches this,
            instead of where its score is the larger (0.5), as ``fcnseg eval --threshold``.
        say: called with one line when the engine and precision are about to be measured
            (and what that involves) and with one when they are chosen.
    """

    def __init__(
        self,
        model: FCN | str | Path,
        *,
        device: str | torch.device = "cpu",
        precision: str = "auto",
        backend: str | None = None,
        tile: int | str | None = "auto",
        overlap: int | None = None,
        batch_size: int = 8,
        compile: bool = False,
        tta: bool | Sequence[float] = False,
        magnify: float | None = None,
        threshold: float | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        if precision not in calibration.PRECISIONS:
            raise ConfigError(
                f"precision must be one of {', '.join(calibration.PRECISIONS)}, not {precision!r}"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch size must be a whole number ≥ 1, not {batch_size!r}")
        self.device, self.batch_size = resolve_device(device), batch_size
        self.tta = tta_scales(tta)
        default = backend is None
        backend = backend or os.environ.get("FCNSEG_BACKEND") or "auto"
        if precision == "int8" and backend in ("auto", "torch"):
            backend = "onnxruntime"  # int8 is ONNX Runtime's quantisation unless asked otherwise
        elif default and backend == "torch" and not isinstance(model, FCN):
            backend = "auto"  # an exported file: the engines that run it
        self.backend = make_backend(backend, model, self.device, compile=compile)
        # The scales (and flips) each piece is scored at: TTA's and the model's working scale.
        if magnify is None:
            magnify = self.backend.meta.magnify
        elif not is_working_scale(magnify):
            raise ConfigError(f"magnify must lie in {MAGNIFY[0]:g}–{MAGNIFY[1]:g}, not {magnify!r}")
        self._views = views(self.tta, magnify)
        check_threshold(threshold, self.meta.num_classes)  # refused now, not at the first image
        self.threshold = threshold
        self._model, self._say = model, say
        self.plan = TilePlan.make(tile, overlap, field=self.backend.field, align=self.backend.align)
        # Tiles asked for explicitly were warned about now; automatic ones, once used.
        self._unbounded_warned = tile != "auto"
        self._requested = precision
        self._candidates, self.calibration = calibration.plan(precision, self.backend, self.device)

    # -- what it is

    @property
    def meta(self) -> ModelMeta:
        return self.backend.meta

    @property
    def num_classes(self) -> int:
        return self.backend.meta.num_classes

    @property
    def precision(self) -> str:
        """The precision in use: ``"auto"`` until calibration has chosen one."""
        if not self.calibration:
            return self._requested
        return self.calibration.chosen.rpartition(":")[2]

    @property
    def engine(self) -> str:
        """The engine in use (``torch``, ``onnxruntime``, ``openvino``): with ``backend="auto"``,
        ``"auto"`` until calibration has chosen one."""
        if isinstance(self.backend, AutoBackend):
            if not self.calibration:
                return "auto"
            return self.backend.split(self.calibration.chosen)[0]
        return self.backend.name

    @property
    def agreement(self) -> float | None:
        """The share of pixels whose class the precision in use gives as fp32 does, once
        measured."""
        return self.calibration.agreement.get(self.calibration.chosen) if self.calibration else None

    @property
    def tile(self) -> int | None:
        return self.plan.tile

    @property
    def overlap(self) -> int:
        return self.plan.overlap

    @property
    def label_dtype(self) -> torch.dtype:
        return Output.of_model(self.meta).label_dtype

    # -- calibration

    def calibrate(self, images: ImageLike | Tensor) -> str:
        """Settle the precision on ``images`` (one image or a uint8 N×3×H×W batch); returns it.

        See :func:`~.precision.calibrate`; :attr:`calibration` records what was measured.
        """
        if self.calibration is not None:
            return self.calibration.chosen
        channels = self.meta.in_channels
        batch = (
            check_batch(images, channels)
            if isinstance(images, Tensor) and images.ndim == 4
            else as_image_tensor(images, channels)[None]
        )
        key = None
        if self._candidates and tuple(self._candidates) != ("int8",):
            model = self._model
            weights = model.state_dict() if isinstance(model, FCN) else Path(model)
            key = calibration.cache_key(weights, batch, self._candidates)
        found = calibration.cached(key) if key else None
        if found is not None and found.chosen in ("fp32", *self._candidates):
            self.calibration = found
        else:
            self._say_calibrating()
            self.calibration = calibration.calibrate(self.backend, batch, self._candidates)
            if key:
                calibration.store(key, self.calibration)
        self.backend.keep(self.calibration.chosen)
        if self._say is not None:
            self._say(self.calibration.describe())
        return self.calibration.chosen

    def _say_calibrating(self) -> None:
        """Say, before a calibration that takes a while, what it does: the first image waits
        for it (and for the model's ONNX export, on a large net minutes on a few cores)."""
        if self._say is None or not self._candidates:
            return
        line = (
            "choosing the engine and precision on the first image, once for this model, "
            "machine and input size"
        )
        backend = self.backend
        if isinstance(backend, AutoBackend) and backend.exports(self._candidates):
            line += (
                "; first exporting the model to ONNX for ONNX Runtime and OpenVINO, once for "
                "this model (minutes for a large net; --backend torch skips it)"
            )
        self._say(line)

    # -- public calls

    def __call__(
        self, images: ImageLike | Sequence[ImageLike], *, out: np.ndarray | Tensor | None = None
    ) -> Tensor | list[Tensor]:
        """Class index maps: H×W for one image, N×H×W for a uint8 N×3×H×W batch, a list for a
        list. uint8 when there are at most 256 classes, else int64. ``out`` (one image only), an
        array or tensor H×W to write into, e.g. a ``numpy.memmap`` for an image of gigapixels.
        A :class:`~fcnseg.data.Raster` (a GeoTIFF opened window by window) is read one tile at a
        time, so neither it nor its scores need fit in memory, only ``out``."""
        return self._apply(images, out, probabilities=False)

    def probabilities(
        self,
        images: ImageLike | Sequence[ImageLike],
        *,
        out: np.ndarray | Tensor | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor | list[Tensor]:
        """Softmax class probabilities C×H×W (N×C×H×W, or a list), as :meth:`__call__`."""
        return self._apply(images, out, probabilities=True, dtype=dtype)

    def _apply(self, images, out, *, probabilities: bool, dtype: torch.dtype = torch.float32):
        kind = Output.of_model(self.meta, probabilities, dtype, self.threshold)
        batch = isinstance(images, Tensor) and images.ndim == 4
        if out is not None and (batch or isinstance(images, (list, tuple))):
            raise ConfigError("out= takes one image at a time")
        if batch:
            images = check_batch(images, self.meta.in_channels)
            if self.plan.tiled(*images.shape[-2:]):
                return torch.stack(self._many(list(images), kind))
            return self._batch(images, kind)
        if isinstance(images, (list, tuple)):
            return self._many(list(images), kind)
        if isinstance(images, Raster):
            image = self._raster(images)
        else:
            image = as_image_tensor(images, self.meta.in_channels)
        if out is None and isinstance(image, Tensor):
            return self._many([image], kind)[0]
        if out is None:  # a raster read tile by tile: its output in memory
            out = torch.empty(kind.shape(image), dtype=kind.out_dtype)
        target = torch.from_numpy(out) if isinstance(out, np.ndarray) else out
        if tuple(target.shape) != kind.shape(image):
            raise ConfigError(f"out has shape {tuple(target.shape)}, expected {kind.shape(image)}")
        with torch.inference_mode():
            self._one(image, target, kind)
        return target

    def _raster(self, raster: Raster) -> Raster | Tensor:
        """A raster file: read tile by tile when the plan tiles it, else whole."""
        if raster.shape[0] != self.meta.in_channels:
            raise ConfigError(
                f"{raster.path}: opened with {raster.shape[0]} channels but the model takes "
                f"{self.meta.in_channels}; open it as Raster(path, {self.meta.in_channels})"
            )
        return raster if self.plan.tiled(*raster.shape[1:]) else raster.read()

    # -- batching by size, whole or tiled

    def _many(self, images: list[ImageLike], kind: Output) -> list[Tensor]:
        """Images of one size run as a batch; others (and tiled ones) one by one."""
        if not images:
            raise ConfigError("no images given")
        tensors = [as_image_tensor(im, self.meta.in_channels) for im in images]
        results: list[Tensor] = [torch.empty(0)] * len(tensors)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, t in enumerate(tensors):
            groups.setdefault(tuple(t.shape[-2:]), []).append(i)
        with torch.inference_mode():
            for (h, w), members in groups.items():
                tiled = self.plan.tiled(h, w)
                step = 1 if tiled else self.batch_size
                for start in range(0, len(members), step):
                    chunk = members[start : start + step]
                    stacked = torch.stack([tensors[i] for i in chunk])
                    if tiled:
                        out = kind.empty(stacked)
                        self._one(stacked[0], out[0], kind)
                    else:
                        out = self._batch(stacked, kind)
                    for i, o in zip(chunk, out, strict=True):
                        results[i] = o
        return results

    def _batch(self, images: Tensor, kind: Output) -> Tensor:
        """A uint8 batch N×3×H×W of one size, run ``batch_size`` at a time."""
        h, w = images.shape[-2:]
        out = kind.empty(images)
        step = self.batch_size
        if self.device.type == "cpu":  # passes whose activations still fit the caches
            step = max(1, min(step, CPU_PASS_PIXELS // (h * w)))
        with torch.inference_mode():
            for start in range(0, len(images), step):
                chunk = slice(start, start + step)
                self._run(images[chunk], out[chunk], (0, h), (0, w), kind)
        return out

    def _one(self, image: Tensor, out: Tensor, kind: Output) -> None:
        """One image into ``out``: whole, or tile by tile."""
        h, w = image.shape[-2:]
        if not self.plan.tiled(h, w):
            self._run(image[None], out[None], (0, h), (0, w), kind)
            return
        if self.plan.unbounded and not self._unbounded_warned:
            warnings.warn(UNBOUNDED, stacklevel=4)
            self._unbounded_warned = True
        for piece, target, rows, cols in self.plan.tiles(image, out):
            self._run(piece[None], target[None], rows, cols, kind)

    def _run(self, images: Tensor, out: Tensor, rows: Span, cols: Span, kind: Output) -> None:
        """Write the outputs of ``rows × cols`` of a batch into ``out``, band by band."""
        precision = self.calibrate(images)
        if self._views is not None:  # whole-piece probabilities of the resized views, averaged
            scales, flips = self._views
            scores = tta_scores(
                lambda x: self._whole(x, precision),
                images,
                scales=scales,
                flips=flips,
                parts=kind.parts,
            )
            out.copy_(kind.of(scores[..., rows[0] : rows[1], cols[0] : cols[1]]))
            return
        top = 0
        for scores in self.backend.scores(images, rows, cols, precision):
            out[..., top : top + scores.shape[-2], :].copy_(kind.of(scores))
            top += scores.shape[-2]

    def _whole(self, images: Tensor, precision: str) -> Tensor:
        """The full-resolution scores of a batch, all at once."""
        h, w = images.shape[-2:]
        return torch.cat(list(self.backend.scores(images, (0, h), (0, w), precision)), -2)
