"""ONNX export: one graph from uint8 image to class scores, for any batch, height and width.

The graph takes the RGB image as uint8 N×3×H×W (a model of other input channels: float32
N×C×H×W in its images' units) and does the model's normalisation itself, so a user of the file
needs no knowledge of the backbone's mean and standard deviation. Its output
is the N×C×H×W scores (logits) of the FCN, at the input's size.

Exporting "any height and width" takes care. The model pads its input to whole output strides
and crops maps with Python ``min``/``max`` on shapes; the exporter would freeze those at the
example's values and the graph would then be wrong, silently, for other sizes. So the graph pads
here, by ``(-H) mod 32``, an expression that holds for every size, and the model only ever sees
sizes that are multiples of its stride, for which its own shape logic takes one branch. Every
export is then checked by running ONNX Runtime against PyTorch on several sizes, each with a
different remainder modulo 32.

The model's metadata (variant, backbone, classes, palette, normalisation, receptive field) is
stored in the file's ``metadata_props`` under ``fcnseg``; ``classes`` and ``palette`` also have
keys of their own for other tools.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import CheckpointError, FcnsegError
from ..models import FCN, ModelMeta, output_field, pad_to_stride
from .atomic import atomic_write

__all__ = ["DEFAULT_OPSET", "OnnxModel", "export_onnx", "verify_onnx"]

DEFAULT_OPSET = 18  # the lowest opset torch's (dynamo) exporter writes
# Sizes the export is checked on: remainders 0, 1, 31 and 4 modulo 32, odd and even, portrait
# and landscape, small enough to check a VGG in seconds.
CHECK_SIZES = ((64, 96), (97, 63), (95, 132))
_KEY = "fcnseg"


class _Graph(nn.Module):
    """uint8 image → logits, the module that is exported (see the module docstring)."""

    def __init__(self, model: FCN) -> None:
        super().__init__()
        self.model, self.pad_to = model, model.pad_to

    def forward(self, image: Tensor) -> Tensor:
        height, width = image.shape[-2:]
        x = self.model.normalization(image)
        if self.pad_to > 1:
            x = pad_to_stride(x, self.pad_to)
        return self.model(x)[..., :height, :width]


def smallest_side(model: FCN) -> int:
    """The smallest height and width the exported graph is valid for: a padded side must reach
    the backbone's minimum input (for all nets but AlexNet, any side will)."""
    if model.pad_to == 1:
        return 1
    return max(1, model.backbone.min_size - model.pad_to + 1)


def input_description(meta: ModelMeta) -> str:
    """The graph's input: uint8 RGB, or float32 bands in the training images' units."""
    if meta.in_channels == 3:
        return "uint8 RGB N×3×H×W"
    return f"float32 N×{meta.in_channels}×H×W"


def example_images(meta: ModelMeta, n: int, h: int, w: int, generator: torch.Generator) -> Tensor:
    """Random images of the graph's input type."""
    image = torch.randint(
        0, 256, (n, meta.in_channels, h, w), dtype=torch.uint8, generator=generator
    )
    return image if meta.in_channels == 3 else image.float()


def metadata(model: FCN) -> dict[str, str]:
    """The ``metadata_props`` of an exported model."""
    meta = {
        **model.meta.to_json(),
        "field": output_field(model),
        "align": max(model.backbone.taps),
        "smallest_side": smallest_side(model),
        "input": input_description(model.meta),
        "output": "logits N×C×H×W",
    }
    props = {_KEY: json.dumps(meta)}
    for key in ("classes", "palette"):
        if meta[key] is not None:
            props[key] = json.dumps(meta[key])
    return props


def export_onnx(
    model: FCN, path: str | Path, *, opset: int = DEFAULT_OPSET, check: bool = True
) -> list[dict]:
    """Write ``model`` to ``path`` as ONNX with dynamic batch, height and width.

    Returns the check, one dict per size of :data:`CHECK_SIZES` (``size``, ``max_abs_diff``,
    ``agreement`` of the argmax with PyTorch's); raises :class:`FcnsegError` if the graph does
    not reproduce the model (argmax agreement under 99.9%).
    """
    import onnx

    graph = _Graph(model).eval()
    side = smallest_side(model)
    dims = {
        0: torch.export.Dim("batch", min=1),
        2: torch.export.Dim("height", min=side),
        3: torch.export.Dim("width", min=side),
    }
    example = example_images(
        model.meta, 2, max(side, 64), max(side, 96), torch.Generator().manual_seed(0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Guards the shape logic cannot prove for all sizes become assertions rather than
        # specialisations; the padding above makes them hold, and the check below confirms it.
        program = torch.export.export(
            graph,
            (example,),
            dynamic_shapes={"image": dims},
            strict=False,
            prefer_deferred_runtime_asserts_over_guards=True,
        )
        onnx_program = torch.onnx.export(
            program,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=["image"],
            output_names=["logits"],
            verbose=False,
        )
    proto = onnx_program.model_proto
    for key, value in metadata(model).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    atomic_write(path, lambda tmp: onnx.save_model(proto, str(tmp)))
    return verify_onnx(model, path) if check else []


def verify_onnx(
    model: FCN, path: str | Path, sizes: tuple[tuple[int, int], ...] = CHECK_SIZES
) -> list[dict]:
    """Run the exported graph and the model on random images of ``sizes``; report and raise.
    ``agreement`` is over the pixels whose class is clear (top-two margin above 1e-4 of the
    largest score)."""
    session = OnnxModel(path)
    generator = torch.Generator().manual_seed(0)
    report = []
    for h, w in sizes:
        h, w = max(h, session.smallest_side), max(w, session.smallest_side)
        image = example_images(model.meta, 2, h, w, generator)
        with torch.no_grad():
            expected = model.eval()(model.normalization(image))
        got = session(image)
        # Float arithmetic in another order moves the scores by ~1e-6 of their size: a pixel
        # whose top two classes lie closer than 1e-4 of it may flip without anything wrong
        # (random images leave many such), so only the pixels with a clear winner count.
        top2 = expected.topk(2, dim=1).values
        clear = top2[:, 0] - top2[:, 1] > 1e-4 * expected.abs().amax()
        flips = ((got.argmax(1) != expected.argmax(1)) & clear).sum()
        agreement = 1 - (flips / clear.sum().clamp(min=1)).item()
        report.append(
            {
                "size": [h, w],
                "max_abs_diff": (got - expected).abs().max().item(),
                "agreement": agreement,
            }
        )
        if agreement < 0.999:
            raise FcnsegError(
                f"{path}: the exported graph disagrees with the model at {h}×{w} "
                f"({agreement:.2%} of pixels); report this with the model's "
                "backbone and geometry"
            )
    return report


@dataclass
class OnnxModel:
    """An exported FCN run by ONNX Runtime: uint8 N×3×H×W in (float32 N×C×H×W for other
    input channels), logits out, as torch tensors."""

    path: Path
    device: torch.device = torch.device("cpu")

    def __post_init__(self) -> None:
        import onnxruntime as ort

        self.path = Path(self.path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: no such ONNX file; check the path")
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(self.path), providers=providers)
        except Exception as exc:  # ORT reports bad files with its own exception types
            raise CheckpointError(
                f"{self.path}: not a readable ONNX model ({exc}); "
                "export it again with fcnseg export"
            ) from None
        props = self.session.get_modelmeta().custom_metadata_map
        if _KEY not in props:
            raise CheckpointError(
                f"{self.path}: an ONNX model but not one fcnseg exported "
                "(no fcnseg metadata); export it with fcnseg export"
            )
        try:
            data = json.loads(props[_KEY])
        except json.JSONDecodeError:
            data = None
        self.meta = ModelMeta.from_json(data, source=str(self.path))
        self.num_classes = self.meta.num_classes
        try:
            self.field = float(self.meta.extra["field"])
            self.align = int(self.meta.extra["align"])
            self.smallest_side = int(self.meta.extra.get("smallest_side", 1))
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(
                f"{self.path}: its fcnseg metadata lacks the receptive field "
                "or alignment; export it again with fcnseg export"
            ) from None

    @classmethod
    def of(cls, model: FCN | str | Path, *, device: torch.device) -> OnnxModel:
        """Open an exported file, or export ``model`` to a temporary one first."""
        if not isinstance(model, FCN):
            return cls(Path(model), device)
        folder = tempfile.TemporaryDirectory(prefix="fcnseg-onnx-")
        path = Path(folder.name) / "model.onnx"
        export_onnx(model, path, check=False)
        runner = cls(path, device)
        runner._folder = folder  # removed with the runner
        return runner

    def quantized(self, images: Tensor) -> OnnxModel:
        """This model with int8 convolutions (ONNX Runtime's static, per-channel QDQ
        quantisation), activation ranges calibrated on the uint8 batch ``images``."""
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.batches = iter([{"image": im[None].numpy()} for im in images.cpu()])

            def get_next(self) -> dict | None:
                return next(self.batches, None)

        folder = tempfile.TemporaryDirectory(prefix="fcnseg-int8-")
        prepared, path = Path(folder.name) / "prepared.onnx", Path(folder.name) / "int8.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Shape inference and batch-norm folding first, as ONNX Runtime recommends.
            quant_pre_process(str(self.path), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(path),
                Reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
            )
        runner = OnnxModel(path, self.device)
        runner._folder = folder
        return runner

    def inputs(self, images: Tensor) -> np.ndarray:
        """The graph's input for a batch: uint8 RGB (float32 for other channel counts)."""
        images = images.cpu().contiguous()
        if self.meta.in_channels != 3:
            images = images.float()
        elif images.dtype != torch.uint8:  # the graph takes 8-bit RGB (resized views are float)
            images = images.round().clamp(0, 255).to(torch.uint8)
        if min(images.shape[-2:]) < self.smallest_side:
            raise FcnsegError(
                f"image of {tuple(images.shape[-2:])} pixels is smaller than the "
                f"{self.smallest_side} this model accepts; upscale it"
            )
        return images.numpy()

    def __call__(self, images: Tensor) -> Tensor:
        (logits,) = self.session.run(None, {"image": self.inputs(images)})
        return torch.from_numpy(np.asarray(logits))
