"""Whole-image inference in one pass (paper §3), fast, and tiled for images too large for memory.

An FCN takes an image of any size and returns scores for every pixel in one forward pass. The
:class:`Predictor` keeps that property and removes what costs time without changing the answer:

* the model runs under ``torch.inference_mode`` in ``channels_last`` layout (oneDNN's native
  layout on CPU, tensor cores' on GPU), with batch normalisation folded into the convolutions;
* the backbone runs in bfloat16 or float16 where the hardware computes in it natively (AMX,
  AVX-512 BF16 or FP16 on CPU, any recent GPU) and the class map stays that of fp32 on 99.5% of
  the pixels, whichever is measured fastest; the scoring layers, the skips and the upsampling
  stay in fp32;
* the final fixed bilinear upsampling (§3.3) and crop are applied as two small matrices, one per
  axis, computed from the model's own layer, and only for the rows and columns wanted; when
  only the class map is asked for, the full-resolution scores exist a band of rows at a time,
  never as a whole float map;
* images larger than ``tile`` (by default, those over 4096×4096 pixels) are cut into
  overlapping tiles whose overlap covers the receptive field (§3.1), and only each tile's centre
  is kept: the tiled answer is the whole-image answer, with memory bounded by one tile and the
  output.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from .geometry import layer_field
from .models import FCN, Crop
from .upsampling import FixedUpsample

__all__ = [
    "AGREEMENT", "AUTO_TILE", "AUTO_TILE_PIXELS", "PRECISIONS", "Predictor", "Upsampling",
    "auto_candidates", "cpu_has_bf16", "cpu_has_fp16", "fold_batchnorm", "output_field",
    "tile_windows",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# ``precision="auto"`` considers a reduced precision only if its class map agrees with fp32's on
# at least this share of the pixels of a calibration image.
AGREEMENT = 0.995
# The calibration image is cut to at most this size: enough pixels for a share to 0.1%, at a
# fraction of a full image's cost.
CALIBRATION_SIZE = 256
# ``tile="auto"`` segments images of more than AUTO_TILE_PIXELS pixels (a 4096×4096 image) in
# tiles of AUTO_TILE pixels: below that, one whole-image pass is fastest and fits in memory; above
# it, memory stays bounded by the image, the output and one tile, whatever the image's size.
AUTO_TILE = 2048
AUTO_TILE_PIXELS = 4096 * 4096
# On CPU a batch runs in passes of at most this many pixels: beyond it the activations outgrow
# the caches and images/s fall. Measured on 2 Xeon cores, FCN-8s Lite0 on 8 CamVid frames
# (360×480) in passes of 1, 2, 4 and 8 images: bf16 28.1, 34.8, 35.3, 30.8 img/s; fp32 21.0,
# 24.4, 23.4, 19.6.
CPU_PASS_PIXELS = 4 * 360 * 480
# Full-resolution scores are formed this many values at a time when only the argmax is kept.
BAND_VALUES = 1 << 21

ImageLike = Image.Image | np.ndarray | Tensor


# ---------------------------------------------------------------- hardware


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AMX tiles or AVX-512 BF16).

    Without them oneDNN emulates bf16 and it is slower than fp32, so the rule is by instruction
    set, not by what oneDNN accepts.
    """
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


@lru_cache(maxsize=1)
def cpu_has_fp16() -> bool:
    """Whether this CPU computes in float16 natively (AVX-512 FP16 or AMX FP16)."""
    if getattr(torch.cpu, "_is_amx_fp16_supported", lambda: False)():
        return True
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.exists() and " avx512_fp16" in cpuinfo.read_text()


def auto_candidates(device: torch.device) -> tuple[str, ...]:
    """The reduced precisions ``auto`` tries on ``device``: those the hardware computes
    natively (emulated ones are slower than fp32)."""
    if device.type == "cuda":
        return ("bf16", "fp16") if torch.cuda.is_bf16_supported() else ("fp16",)
    if device.type != "cpu":
        return ()
    return tuple(p for p, native in (("bf16", cpu_has_bf16()), ("fp16", cpu_has_fp16()))
                 if native)


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---------------------------------------------------------------- model preparation


def fold_batchnorm(net: nn.Module) -> int:
    """Fold every batch normalisation that directly follows a convolution into it, in place.

    Inference-time batch normalisation is an affine map per channel, so it can live in the
    convolution's weights and bias and save a full pass over the feature map. Pairs are found
    by running the net once on a random input and matching each normalisation's input to a
    convolution's output; the net's outputs on that input are checked after folding, and the
    folding is undone if they changed. Returns the number of layers folded.
    """
    produced: dict[int, nn.Conv2d] = {}
    pairs: list[tuple[nn.Conv2d, str, nn.BatchNorm2d]] = []
    names = {m: n for n, m in net.named_modules()}

    def after_conv(conv: nn.Module, _inputs: tuple, out: Tensor) -> None:
        produced[id(out)] = conv

    def before_norm(norm: nn.Module, inputs: tuple) -> None:
        conv = produced.get(id(inputs[0]))
        if conv is not None and not norm.training and _after_norm(norm) is not None:
            pairs.append((conv, names[norm], norm))

    hooks = [m.register_forward_hook(after_conv) for m in net.modules()
             if isinstance(m, nn.Conv2d) and not isinstance(m, nn.ConvTranspose2d)]
    hooks += [m.register_forward_pre_hook(before_norm) for m in net.modules()
              if isinstance(m, nn.BatchNorm2d) and m.track_running_stats]
    probe = torch.randn(1, 3, net.min_size, net.min_size,
                        generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            before = net(probe)
    finally:
        for h in hooks:
            h.remove()
    undo = []
    with torch.no_grad():
        for conv, name, norm in pairs:
            undo.append((conv, conv.weight.clone(), conv.bias, name, norm))
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            conv.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias)
            _replace(net, name, _after_norm(norm))
        after = net(probe) if pairs else before
        if all(torch.allclose(after[s], before[s], rtol=1e-3,
                              atol=1e-4 * before[s].abs().max().item()) for s in before):
            return len(pairs)
        for conv, weight, bias, name, norm in undo:  # a pattern the matching got wrong
            conv.weight.copy_(weight)
            conv.bias = bias
            _replace(net, name, norm)
    return 0


def _replace(net: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, attr, module)


def _after_norm(norm: nn.BatchNorm2d) -> nn.Module | None:
    """What remains of a normalisation layer once its affine map is folded away: nothing for
    PyTorch's own, dropout and activation for timm's fused norm-act layers; ``None`` for a
    subclass of unknown behaviour (left alone)."""
    if type(norm) is nn.BatchNorm2d:
        return nn.Identity()
    if hasattr(norm, "act") and hasattr(norm, "drop") and norm.affine:
        return nn.Sequential(norm.drop, norm.act)
    return None


class _LowPrecision(nn.Module):
    """The backbone in bf16 or fp16; its taps come back in fp32, so that the scoring layers,
    the skip sums and the upsampling (a few percent of the work) keep full precision."""

    def __init__(self, backbone: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.net = backbone.to(dtype)
        self.dtype, self.min_size = dtype, backbone.min_size

    def forward(self, x: Tensor) -> dict[int, Tensor]:
        return {s: f.float() for s, f in self.net(x.to(self.dtype)).items()}


class _CoarseScores(nn.Module):
    """Stands in for the final crop so that the FCN returns its coarse scores; the
    :class:`Upsampling` then does the upsampling and crop, only where it is needed."""

    def forward(self, x: Tensor, height: int, width: int) -> Tensor:
        return x


@dataclass(frozen=True)
class Upsampling:
    """The FCN's final fixed bilinear upsampling and crop as one matrix per axis.

    The reference ``upscore`` is a transposed convolution whose kernel is the outer product of a
    1-D ramp with itself (§3.3), followed by the ``score`` crop. Both are linear and separable,
    so the scores at full resolution are ``A · S · Bᵀ`` for coarse scores ``S``, with ``A`` and
    ``B`` built from the layer's own kernel, stride, padding and crop. Any band of rows or
    columns costs only its share, which is what tiling and the band-wise argmax need.
    """

    ramp: tuple[float, ...]
    factor: int
    padding: int
    offset: int

    @classmethod
    def of(cls, model: FCN) -> Upsampling | None:
        """The model's final upsampling, or ``None`` if it is not a separable fixed one."""
        final = getattr(model, model.final)
        if not isinstance(final, FixedUpsample) or not isinstance(model.score, Crop):
            return None
        kernel = final.weight.detach().double().cpu()
        ramp = kernel[0, 0].sum(1) / kernel[0, 0].sum().sqrt()
        if not torch.allclose(kernel, torch.outer(ramp, ramp).expand_as(kernel), atol=1e-6):
            return None
        return cls(tuple(ramp.tolist()), final.factor, final.padding, model.score.offset)

    def matrix(self, coarse: int, start: int, stop: int, device: torch.device) -> Tensor:
        """Rows ``start:stop`` of the output (in input pixels) from ``coarse`` positions."""
        return _matrix(self, coarse, start, stop, str(device))

    def __call__(self, scores: Tensor, rows: tuple[int, int], cols: tuple[int, int]) -> Tensor:
        """Full-resolution scores N×C×rows×cols of the coarse ``scores`` N×C×h×w."""
        a = self.matrix(scores.shape[-2], *rows, scores.device)
        b = self.matrix(scores.shape[-1], *cols, scores.device)
        return a @ (scores @ b.T)


@lru_cache(maxsize=64)
def _matrix(up: Upsampling, coarse: int, start: int, stop: int, device: str) -> Tensor:
    kernel = len(up.ramp)
    length = (coarse - 1) * up.factor + kernel - 2 * up.padding  # the transposed conv's output
    # The crop takes positions offset…; past the end it repeats the last one (Crop's fill).
    y = (torch.arange(start, stop) + up.offset).clamp(max=length - 1)
    tap = y[:, None] + up.padding - torch.arange(coarse)[None, :] * up.factor
    ramp = torch.tensor(up.ramp, dtype=torch.float32)
    inside = (tap >= 0) & (tap < kernel)
    return torch.where(inside, ramp[tap.clamp(0, kernel - 1)], 0.0).to(device)


def output_field(model: FCN) -> float:
    """Receptive field of one output pixel, in pixels (§3.1): the deepest tap's field carried
    through the skip upsamplings and the final upsampling. Infinite for nets with global
    context (squeeze-excite)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an unknown field is reported as infinite
        field = model.backbone.field(32)
    for name in model.upscores:
        field = field.then(layer_field(getattr(model, name)))
    return field.then(getattr(model, model.final).field).size


# ---------------------------------------------------------------- tiling


@dataclass(frozen=True)
class Window:
    """A tile along one axis: the model sees ``start:stop``, and ``keep_start:keep_stop`` (in
    image coordinates) is written out."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int


def tile_windows(length: int, tile: int, overlap: int, align: int = 32) -> list[Window]:
    """Overlapping windows of ``tile`` pixels covering ``length``, each keeping its centre.

    Neighbouring windows share ``overlap`` pixels and each drops half of it on its inner sides,
    so every kept pixel has ``overlap / 2`` pixels of real context on both sides (or lies on
    the image border). Windows start on multiples of ``align`` (the output stride), so each
    tile sees the same sampling grid as the whole image.
    """
    step = (tile - overlap) // align * align
    if step < align:
        raise ValueError(f"tile {tile} leaves no room beside an overlap of {overlap}; use a tile "
                         f"of at least {overlap + align} pixels or a smaller overlap")
    margin = overlap // 2
    starts = [0]
    while starts[-1] + tile < length:
        starts.append(starts[-1] + step)
    out = []
    for i, s in enumerate(starts):
        last = i == len(starts) - 1
        out.append(Window(s, min(s + tile, length), 0 if i == 0 else s + margin,
                          length if last else starts[i + 1] + margin))
    return out


# ---------------------------------------------------------------- inputs


def as_image_tensor(image: ImageLike) -> Tensor:
    """An image as a uint8 3×H×W RGB tensor, without copying where the input allows it.

    Accepts a PIL image of any mode, a numpy array H×W×3 (or H×W grey, or H×W×4 with the alpha
    dropped) of uint8, or a uint8 tensor 3×H×W.
    """
    if isinstance(image, Image.Image):
        from .data.reading import to_rgb_tensor

        return to_rgb_tensor(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(f"expected a uint8 H×W×3 array, got {image.dtype} {image.shape}")
        if image.ndim == 2:
            image = image[..., None].repeat(3, axis=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a read-only array (a memmap) is only ever read
            return torch.from_numpy(image[..., :3]).permute(2, 0, 1)
    if isinstance(image, Tensor) and image.dtype == torch.uint8 and image.ndim == 3:
        return image
    raise ValueError("expected a PIL image, a uint8 H×W×3 array or a uint8 3×H×W tensor, got "
                     f"{type(image).__name__} {getattr(image, 'shape', '')}")


# ---------------------------------------------------------------- the predictor


class Predictor:
    """Segment images with an FCN: whole image in one pass, as fast as the hardware allows.

    Args:
        model: the FCN (left untouched: the predictor works on its own copy), or for
            ``backend="onnxruntime"`` an FCN or the path of a model written by ``fcnseg export``.
        device: ``"cpu"``, ``"cuda"``…
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"``, ``"int8"`` or ``"auto"``. ``auto`` (the
            default) tries, on the first image it is given (or the one passed to
            :meth:`calibrate`), each reduced precision the hardware computes natively (bf16 on
            CPUs with AMX or AVX-512 BF16, fp16 on CPUs with AVX-512 FP16, both on GPUs) and
            takes the fastest of fp32 and those that give at least 99.5% of the pixels fp32's
            class. ``int8`` runs ONNX Runtime's static quantisation,
            calibrated on the first batch given (it implies ``backend="onnxruntime"``).
        backend: ``"torch"`` or ``"onnxruntime"`` (fp32, or int8).
        tile: images with a side longer than this are segmented in overlapping tiles of
            ``tile``×``tile`` pixels; ``None`` never tiles; ``"auto"`` (the default) tiles
            images of more than :data:`AUTO_TILE_PIXELS` pixels in tiles of :data:`AUTO_TILE`.
        overlap: pixels shared by neighbouring tiles; by default the receptive field of an
            output pixel, which makes the tiled answer equal to the whole-image one.
        batch_size: images of one size (or tiles) run together, this many at a time (on CPU,
            at most :data:`CPU_PASS_PIXELS` pixels' worth).
        compile: ``torch.compile`` the network (slow to start, per image size).
    """

    def __init__(self, model: FCN | str | Path, *, device: str | torch.device = "cpu",
                 precision: str = "auto", backend: str = "torch", tile: int | str | None = "auto",
                 overlap: int | None = None, batch_size: int = 8, compile: bool = False) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        if backend not in ("torch", "onnxruntime"):
            raise ValueError(f"backend must be 'torch' or 'onnxruntime', not {backend!r}")
        self.device = torch.device(device)
        self.batch_size, self.compile = batch_size, compile
        if backend == "onnxruntime" or precision == "int8":
            from .export import OnnxModel

            self._onnx = OnnxModel.of(model, device=self.device)
            self.num_classes, self.meta = self._onnx.num_classes, self._onnx.meta
            # int8 is settled (quantised and calibrated) on the first images given.
            self.precision = "fp32"
            self._pending = ("int8",) if precision == "int8" else None
            field, align = self._onnx.field, self._onnx.align
        else:
            if not isinstance(model, FCN):
                raise TypeError("backend='torch' needs an FCN; load a checkpoint with fcnseg.load")
            self._onnx = None
            self.num_classes, self.meta = model.num_classes, dict(model.meta)
            self._model = model
            self._nets: dict[str, tuple[nn.Module, Upsampling | None]] = {}
            if precision == "auto":
                self._pending = auto_candidates(self.device) or None
                self.precision = self._pending[0] if self._pending else "fp32"
            else:
                if precision != "fp32":
                    self._check_supported(precision)
                self.precision, self._pending = precision, None
            field, align = output_field(model), max(model.backbone.taps)
        if tile is not None and tile != "auto" and (not isinstance(tile, int) or tile < 1):
            raise ValueError(f"tile must be a positive number of pixels, 'auto' or None, not "
                             f"{tile!r}")
        self.align = align
        self.agreement: float | None = None  # of the precision in use with fp32, once checked
        # What calibration found: each precision tried, its agreement with fp32 and seconds
        self.calibration: dict[str, dict[str, float]] = {}
        self._unbounded = None  # the warning for a tiled net of unbounded field, once given
        if tile == "auto":
            # Tiles of self.tile pixels for images of more than self.tile_above pixels; a tile
            # at least twice the overlap, so that at least half of each tile is kept.
            self.tile_above = AUTO_TILE_PIXELS
            wide = 2 * (overlap if overlap is not None else field)
            self.tile = AUTO_TILE if math.isinf(wide) else \
                max(AUTO_TILE, math.ceil(wide / align) * align)
        else:
            self.tile_above, self.tile = None, tile
        self.overlap = self._overlap(overlap, field, warn=tile != "auto")

    # -- set-up

    def _check_supported(self, precision: str) -> None:
        if self.device.type == "cpu" and precision == "bf16" and not cpu_has_bf16():
            warnings.warn("this CPU has no bf16 instructions: bf16 is emulated and slower than "
                          "fp32", stacklevel=3)
        if self.device.type == "cpu" and precision == "fp16" and not cpu_has_fp16():
            warnings.warn("this CPU has no fp16 instructions: fp16 is emulated and slower than "
                          "fp32; prefer bf16 or auto", stacklevel=3)

    def _overlap(self, overlap: int | None, field: float, warn: bool) -> int:
        if self.tile is None:
            return 0
        if overlap is not None:
            return overlap
        if math.isinf(field):
            self._unbounded = ("the model's receptive field is unbounded (global context): tiles "
                               "overlap by half a tile and the result is close to, not equal "
                               "to, the whole-image one")
            if warn:  # tiles asked for: say so now; with tile="auto", once an image is tiled
                warnings.warn(self._unbounded, stacklevel=3)
                self._unbounded = None
            return self.tile // 2
        return math.ceil(field)

    def _net(self, precision: str) -> tuple[nn.Module, Upsampling | None]:
        """The network for ``precision``, built once: a copy of the model made for speed."""
        if precision not in self._nets:
            net = copy.deepcopy(self._model).eval()
            fold_batchnorm(net.backbone)
            up = Upsampling.of(net)
            if up is not None:  # the model returns coarse scores; the Upsampling does the rest
                setattr(net, net.final, nn.Identity())
                net.score = _CoarseScores()
            if precision != "fp32":
                net.backbone = _LowPrecision(net.backbone, DTYPES[precision])
            net = net.to(self.device, memory_format=torch.channels_last)
            if self.compile:
                net = torch.compile(net, dynamic=False)
            self._nets[precision] = (net, up)
        return self._nets[precision]

    # -- the forward pass

    def _forward(self, images: Tensor, rows: tuple[int, int], cols: tuple[int, int],
                 precision: str) -> Iterator[Tensor]:
        """Full-resolution scores of ``rows × cols`` for a uint8 batch N×3×H×W, fp32, in bands
        of rows of at most :data:`BAND_VALUES` values."""
        if self._onnx is not None:
            logits = self._onnx(images)[..., rows[0]:rows[1], cols[0]:cols[1]]
            band = max(1, BAND_VALUES // max(1, logits[:, :, :1].numel()))
            yield from logits.split(band, dim=-2)
            return
        net, up = self._net(precision)
        # Layout first, on the uint8 image: the normalisation then writes channels-last floats.
        x = images.to(self.device).contiguous(memory_format=torch.channels_last)
        x = self._model.normalization(x).contiguous(memory_format=torch.channels_last)
        scores = net(x).float()
        if up is None:
            yield scores[..., rows[0]:rows[1], cols[0]:cols[1]]
            return
        scores = scores.contiguous()
        per_row = scores.shape[0] * scores.shape[1] * (cols[1] - cols[0])
        band = max(1, BAND_VALUES // per_row)
        b = up.matrix(scores.shape[-1], *cols, scores.device)
        wide = scores @ b.T  # N×C×h×cols: the columns once, then band by band of rows
        for top in range(rows[0], rows[1], band):
            a = up.matrix(scores.shape[-2], top, min(top + band, rows[1]), scores.device)
            yield a @ wide

    def _run(self, images: Tensor, out: Tensor, rows: tuple[int, int], cols: tuple[int, int],
             probabilities: bool) -> None:
        """Write labels (N×h×w) or probabilities (N×C×h×w) of ``rows × cols`` into ``out``."""
        if self._pending is not None:
            self.calibrate(images)
        top = 0
        for scores in self._forward(images, rows, cols, self.precision):
            n = scores.shape[-2]
            # max(1) finds the first maximum as argmax does, several times faster over dim 1
            result = scores.softmax(1) if probabilities else scores.max(1).indices
            out[..., top:top + n, :].copy_(result)
            top += n

    def calibrate(self, images: ImageLike | Tensor) -> str:
        """Settle the precision on ``images`` (one image or a uint8 N×3×H×W batch).

        ``auto``: run fp32 and each reduced precision the hardware has natively on the centre
        of the first image (at most :data:`CALIBRATION_SIZE` pixels square); keep those whose
        class map agrees with fp32's on at least :data:`AGREEMENT` of the pixels, time them and
        fp32 once more, and take the fastest. ``int8``: calibrate the quantisation's activation
        ranges on the batch, and warn if the agreement is under :data:`AGREEMENT` (int8 was
        asked for, so it is kept). Returns the precision in use; :attr:`calibration` holds
        what was measured.
        """
        candidates, self._pending = self._pending, None
        if candidates is None:
            return self.precision
        batch = images if isinstance(images, Tensor) and images.ndim == 4 else \
            as_image_tensor(images)[None]
        x = batch[:1]
        top, left = [max(0, (n - CALIBRATION_SIZE) // 2) for n in x.shape[-2:]]
        x = x[..., top:top + CALIBRATION_SIZE, left:left + CALIBRATION_SIZE]
        span = (0, x.shape[-2]), (0, x.shape[-1])

        def labels(precision: str) -> Tensor:
            return torch.cat([s.max(1).indices for s in self._forward(x, *span, precision)], -2)

        forced = candidates == ("int8",)  # asked for: checked, not chosen
        with torch.inference_mode():
            reference = labels("fp32")
            if forced:
                self._onnx = self._onnx.quantized(batch)
            agree = {p: (labels(p) == reference).float().mean().item() for p in candidates}
            kept = ["fp32"] + [p for p in candidates if agree[p] >= AGREEMENT]
            # The runs above built each network and warmed it up; now, if there is a choice,
            # the best of two timed runs each (``.cpu()`` waits for a GPU to finish).
            seconds = {p: min(_seconds(lambda p=p: labels(p).cpu()) for _ in range(2))
                       for p in kept} if len(kept) > 1 and not forced else {}
        self.calibration = {p: {"agreement": agree.get(p, 1.0),
                                **({"seconds": seconds[p]} if p in seconds else {})}
                            for p in ("fp32", *candidates)}
        if forced:
            chosen = "int8"
            if agree["int8"] < AGREEMENT:
                warnings.warn(f"int8 agrees with fp32 on {agree['int8']:.2%} of the pixels, "
                              f"under {AGREEMENT:.1%}", stacklevel=2)
        else:
            chosen = min(seconds, key=seconds.get) if seconds else "fp32"
            if len(kept) == 1:
                shares = ", ".join(f"{p} on {agree[p]:.2%}" for p in candidates)
                warnings.warn(f"reduced precision agrees with fp32 on too few pixels ({shares}, "
                              f"under {AGREEMENT:.1%}): using fp32", stacklevel=2)
        self.precision, self.agreement = chosen, agree.get(chosen, 1.0)
        if self._onnx is None:
            self._nets = {p: n for p, n in self._nets.items() if p == chosen}
        return chosen

    # -- public calls

    def __call__(self, images: ImageLike | Sequence[ImageLike], *,
                 out: np.ndarray | Tensor | None = None) -> Tensor | list[Tensor]:
        """Class index maps: H×W for one image, N×H×W for a uint8 N×3×H×W batch, a list for a
        list. uint8 when there are at most 256 classes, else int64. ``out`` (one image only), an
        array or tensor H×W to write into, e.g. a ``numpy.memmap`` for an image of gigapixels."""
        return self._apply(images, out, probabilities=False)

    def probabilities(self, images: ImageLike | Sequence[ImageLike], *,
                      out: np.ndarray | Tensor | None = None,
                      dtype: torch.dtype = torch.float32) -> Tensor | list[Tensor]:
        """Softmax class probabilities C×H×W (N×C×H×W, or a list), as :meth:`__call__`."""
        return self._apply(images, out, probabilities=True, dtype=dtype)

    @property
    def label_dtype(self) -> torch.dtype:
        return torch.uint8 if self.num_classes <= 256 else torch.int64

    def _apply(self, images, out, *, probabilities: bool, dtype: torch.dtype = torch.float32):
        if isinstance(images, Tensor) and images.ndim == 4:
            if out is not None:
                raise ValueError("out= takes one image at a time")
            if self._tiled(*images.shape[-2:]):
                return torch.stack(self._many(list(images), probabilities, dtype))
            return self._batch(images, probabilities, dtype)
        if isinstance(images, (list, tuple)):
            if out is not None:
                raise ValueError("out= takes one image at a time")
            return self._many(list(images), probabilities, dtype)
        image = as_image_tensor(images)
        if out is None:
            return self._many([image], probabilities, dtype)[0]
        target = torch.from_numpy(out) if isinstance(out, np.ndarray) else out
        self._one(image, target, probabilities)
        return target

    def _shape(self, image: Tensor, probabilities: bool) -> tuple[int, ...]:
        return (self.num_classes, *image.shape[-2:]) if probabilities else tuple(image.shape[-2:])

    def _many(self, images: list[ImageLike], probabilities: bool,
              dtype: torch.dtype) -> list[Tensor]:
        """Images of one size run as a batch; others (and tiled ones) one by one."""
        tensors = [as_image_tensor(im) for im in images]
        results: list[Tensor | None] = [None] * len(tensors)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, t in enumerate(tensors):
            groups.setdefault(tuple(t.shape[-2:]), []).append(i)
        with torch.inference_mode():
            for (h, w), members in groups.items():
                if self._tiled(h, w):
                    for i in members:
                        results[i] = self._new(tensors[i], probabilities, dtype)
                        self._one(tensors[i], results[i], probabilities)
                    continue
                for start in range(0, len(members), self.batch_size):
                    chunk = members[start:start + self.batch_size]
                    out = self._batch(torch.stack([tensors[i] for i in chunk]), probabilities,
                                      dtype)
                    for i, o in zip(chunk, out, strict=True):
                        results[i] = o
        return results  # type: ignore[return-value]

    def _batch(self, images: Tensor, probabilities: bool, dtype: torch.dtype) -> Tensor:
        """A uint8 batch N×3×H×W of one size, run ``batch_size`` at a time."""
        h, w = images.shape[-2:]
        out = torch.empty((len(images), *self._shape(images[0], probabilities)),
                          dtype=dtype if probabilities else self.label_dtype)
        step = self.batch_size
        if self.device.type == "cpu":  # passes whose activations still fit the caches
            step = max(1, min(step, CPU_PASS_PIXELS // (h * w)))
        with torch.inference_mode():
            for start in range(0, len(images), step):
                chunk = slice(start, start + step)
                self._run(images[chunk], out[chunk], (0, h), (0, w), probabilities)
        return out

    def _new(self, image: Tensor, probabilities: bool, dtype: torch.dtype) -> Tensor:
        return torch.empty(self._shape(image, probabilities),
                           dtype=dtype if probabilities else self.label_dtype)

    def _tiled(self, height: int, width: int) -> bool:
        if self.tile_above is not None:
            return height * width > self.tile_above
        return self.tile is not None and max(height, width) > self.tile

    def _one(self, image: Tensor, out: Tensor, probabilities: bool) -> None:
        """One image into ``out``: whole, or tile by tile."""
        h, w = image.shape[-2:]
        if tuple(out.shape) != self._shape(image, probabilities):
            raise ValueError(f"out has shape {tuple(out.shape)}, expected "
                             f"{self._shape(image, probabilities)}")
        with torch.inference_mode():
            if not self._tiled(h, w):
                self._run(image[None], out[None], (0, h), (0, w), probabilities)
                return
            if self._unbounded:
                warnings.warn(self._unbounded, stacklevel=3)
                self._unbounded = None
            tile = self.tile
            for rw in tile_windows(h, tile, self.overlap, self.align):
                for cw in tile_windows(w, tile, self.overlap, self.align):
                    # Only this tile of the image is ever copied (a view of a memmap stays one).
                    piece = image[:, rw.start:rw.stop, cw.start:cw.stop].contiguous()
                    target = out[..., rw.keep_start:rw.keep_stop, cw.keep_start:cw.keep_stop]
                    rows = (rw.keep_start - rw.start, rw.keep_stop - rw.start)
                    cols = (cw.keep_start - cw.start, cw.keep_stop - cw.start)
                    self._run(piece[None], target[None], rows, cols, probabilities)
