"""The authors' trained FCNs as fcnseg model files: their ``.caffemodel`` (read without Caffe,
:mod:`.protobuf`) or the PyTorch port's converted ``.pth`` state dicts.

The authors' nets are VGG16 FCNs (and one on CaffeNet, FCN-AlexNet) in the reference geometry
(``geometry="caffe"``), named as fcnseg names its layers (``conv1_1``… ``fc7``, ``score_fr``,
``upscore2``, ``score_pool4``…, with ``_sem``/``_geo`` for SIFT Flow's two heads). What a file
holds says which net it is:

* the variant by its skips (``score_pool4`` → FCN-16s, ``score_pool3`` → FCN-8s), the
  all-at-once nets by their ``scale_pool4``/``scale_pool3`` layers (PAMI §4.3);
* the dataset by the class count: 21 PASCAL VOC, 40 NYUDv2, 60 PASCAL-Context, 33 + 3 SIFT
  Flow; which gives the class names, the palette and the input normalisation of the authors'
  data layers (BGR, less the dataset's mean; for NYUD's colour-and-depth net, log depth less
  its mean as a fourth channel; HHA images in their own order);
* the input channels by ``conv1_1`` (``conv1_1_bgrd`` in the colour-and-depth net).

The values are copied blob by blob from the source into the model file
(:mod:`.streamed`), so importing a 540 MB net takes a small fraction of that in memory.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.datasets import voc_palette
from ..data.readers.paper import CONTEXT_CLASSES, NYUD_CLASSES, SIFTFLOW_CLASSES
from ..data.readers.voc import VOC_CLASSES
from ..errors import CheckpointError
from ..models import BACKBONES, ModelMeta, Normalization, build_fcn
from ..models.fcn import AT_ONCE_SCALE
from ..models.normalization import CAFFE_BGR
from ..models.weights import read_state_dict
from .header import MODEL_KEY
from .protobuf import Blob, Layer, read_caffemodel
from .reference import per_class_kernel
from .streamed import Part, write_safetensors

__all__ = ["DATASETS", "Imported", "import_caffe"]

CHUNK = 1 << 22  # values copied at a time: 16 MB


@dataclass(frozen=True)
class Dataset:
    """What the authors' data layer fed a net: its classes and its input normalisation."""

    name: str
    classes: tuple[str, ...]
    normalization: Normalization


NYUD_BGR = (116.190, 97.203, 92.318)  # the authors' NYUD colour mean (BGR)
DATASETS = {
    "voc": Dataset("PASCAL VOC", tuple(VOC_CLASSES), CAFFE_BGR),
    "context": Dataset("PASCAL-Context", ("background", *CONTEXT_CLASSES), CAFFE_BGR),
    "nyud": Dataset("NYUDv2", tuple(NYUD_CLASSES), Normalization(NYUD_BGR, (1.0,) * 3, bgr=True)),
    # HHA images are fed as stored, not flipped.
    "nyud-hha": Dataset(
        "NYUDv2 (HHA)",
        tuple(NYUD_CLASSES),
        Normalization((132.431, 94.076, 118.477), (1.0,) * 3, bgr=False),
    ),
    # Colour and log depth (§5, early fusion): the depth mean is the log of about 2.55 m.
    "nyud-rgbd": Dataset(
        "NYUDv2 (colour and depth)",
        tuple(NYUD_CLASSES),
        Normalization((*NYUD_BGR, 7.844), (1.0,) * 4, bgr=True),
    ),
    "siftflow": Dataset(
        "SIFT Flow",
        (*SIFTFLOW_CLASSES["semantic"], *SIFTFLOW_CLASSES["geometric"]),
        Normalization((114.578, 115.294, 108.353), (1.0,) * 3, bgr=True),
    ),
}
BY_CLASSES = {21: "voc", 40: "nyud", 60: "context"}


@dataclass(frozen=True)
class Imported:
    """What :func:`import_caffe` wrote: an FCN model file (``meta``), or ImageNet weights for
    a backbone (``meta`` is ``None``), and a one-line summary."""

    path: Path
    backbone: str
    meta: ModelMeta | None
    summary: str


class _Weights:
    """Reference-named weights: the shape of each, and its values in chunks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.blobs: dict[str, Blob] = {}
        self.tensors: dict[str, torch.Tensor] = {}
        self.scales: dict[str, float] = {}
        self.file = None

    def shape(self, name: str) -> tuple[int, ...]:
        if name in self.tensors:
            return tuple(self.tensors[name].shape)
        return self.blobs[name].shape

    def names(self) -> set[str]:
        return set(self.blobs) | set(self.tensors)

    def tensor(self, name: str) -> torch.Tensor:
        if name in self.tensors:
            return self.tensors[name].float()
        return torch.from_numpy(self.blobs[name].read(self.file).copy())

    def chunks(self, name: str) -> Iterator[np.ndarray]:
        if name in self.tensors:
            yield self.tensors[name].float().numpy().ravel()
            return
        blob = self.blobs[name]
        size = np.dtype(blob.dtype).itemsize
        for start in range(0, blob.count, CHUNK):
            n = min(CHUNK, blob.count - start)
            piece = Blob((n,), blob.offset + start * size, n, blob.dtype)
            yield piece.read(self.file)


def _from_caffemodel(path: Path, f) -> _Weights:
    weights = _Weights(path)
    weights.file = f
    _, layers = read_caffemodel(path, f)
    for layer in layers:
        _check_layer(path, layer)
        if layer.type == "Scale":  # the all-at-once nets' fixed scaling of pool4 and pool3
            values = layer.blobs[0].read(f) if layer.blobs else np.ones(1, np.float32)
            weights.scales[layer.name] = float(values.flat[0])
            if not np.all(values == values.flat[0]):
                raise CheckpointError(f"{path}: {layer.name} scales channels unequally")
            continue
        name = "conv1_1" if layer.name == "conv1_1_bgrd" else layer.name
        for blob, param in zip(layer.blobs, ("weight", "bias"), strict=False):
            weights.blobs[f"{name}.{param}"] = blob
    return weights


def _check_layer(path: Path, layer: Layer) -> None:
    if layer.name.endswith(("color", "hha")) and layer.blobs:
        raise CheckpointError(
            f"{path}: a late-fusion net (two streams, {layer.name}…), which fcnseg does not "
            "build; import nyud-fcn32s-color, -hha or -color-d (early fusion) instead"
        )


def import_caffe(source: str | Path, out: str | Path, *, dataset: str | None = None) -> Imported:
    """Import the authors' trained FCN into one fcnseg model file; or an ImageNet classifier,
    BVLC's GoogLeNet or CaffeNet (``bvlc_googlenet.caffemodel``,
    ``bvlc_reference_caffenet.caffemodel``), into weights for ``--backbone bvlc_googlenet``
    (``caffenet``) ``--pretrained-backbone FILE``.

    Args:
        source: the authors' ``.caffemodel`` (either layer format), or a PyTorch state dict
            with the same layer names (the PyTorch port's ``.pth``, read weights-only).
        out: the ``.safetensors`` model file to write.
        dataset: what the net was trained on, where its class count leaves a choice:
            ``nyud-hha`` for the HHA net if its file name does not say ``hha`` (``nyud`` and
            ``nyud-rgbd`` are told apart by their input channels); ``voc``, ``context``,
            ``nyud`` or ``siftflow`` otherwise, found from the class count by default.

    Returns:
        What was written.

    Raises:
        CheckpointError: the file is not such a net, said in one line.
    """
    source = Path(source)
    if not source.is_file():
        raise CheckpointError(f"{source}: no such file; check the path")
    if dataset is not None and dataset not in DATASETS:
        raise CheckpointError(
            f"--dataset {dataset}: must be one of {', '.join(DATASETS)} (what the net was "
            "trained on)"
        )
    if source.suffix.lower() in (".pth", ".pt", ".safetensors"):
        weights = _Weights(source)
        weights.tensors = dict(read_state_dict(source))
        return _write(weights, Path(out), dataset)
    with open(source, "rb") as f:
        return _write(_from_caffemodel(source, f), Path(out), dataset)


def _write(weights: _Weights, out: Path, dataset: str | None) -> Imported:
    path = weights.path
    names = weights.names()
    if "inception_3a/1x1.weight" in names:
        return _write_backbone(weights, out, "bvlc_googlenet")
    if "conv1.weight" in names and "score_fr.weight" not in names:
        return _write_backbone(weights, out, "caffenet")
    heads = None
    if "score_fr_sem.weight" in names:
        heads = {h: weights.shape(f"score_fr_{h}.weight")[0] for h in ("sem", "geo")}
    elif "score_fr.weight" not in names:
        raise CheckpointError(
            f"{path}: no score_fr layer; not one of the authors' FCNs (an ImageNet classifier "
            "is not a segmentation net)"
        )
    # FCN-AlexNet's layers are conv1…conv5 (CaffeNet); the others' conv1_1… (VGG16).
    backbone, first = ("caffenet", "conv1") if "conv1.weight" in names else ("vgg16", "conv1_1")
    if f"{first}.weight" not in names:
        raise CheckpointError(f"{path}: no conv1_1 layer; not one of the authors' FCNs")
    variant = (
        "fcn8s"
        if any(n.startswith("score_pool3") for n in names)
        else "fcn16s"
        if any(n.startswith("score_pool4") for n in names)
        else "fcn32s"
    )
    num_classes = sum(heads.values()) if heads else weights.shape("score_fr.weight")[0]
    in_channels = weights.shape(f"{first}.weight")[1]
    data = _dataset(path, dataset, heads, num_classes, in_channels)
    at_once = _at_once(path, weights.scales)
    with torch.device("meta"):  # only the names and shapes: nothing allocated
        model = build_fcn(
            variant,
            num_classes=heads or num_classes,
            backbone=backbone,
            geometry="caffe",
            at_once=at_once,
            in_channels=in_channels,
        )
    own = model.state_dict()
    finals = {f"{model.final}{s}.weight" for s in model.suffixes}
    parts = []
    for key, tensor in own.items():
        ref = key.removeprefix("backbone.")
        if ref not in names:
            raise CheckpointError(
                f"{path}: has no {ref}, which the reference {variant} has; not one of the "
                "authors' nets, or an incomplete one"
            )
        shape = tuple(tensor.shape)
        if key in finals:  # C×C×k×k, zero off the diagonal: its diagonal (FixedUpsample)
            kernel = per_class_kernel(weights.tensor(ref), tensor, str(path), ref)
            if tuple(kernel.shape) != shape:
                raise CheckpointError(f"{path}: {ref} is {weights.shape(ref)}, expected {shape}")
            parts.append(Part(key, shape, lambda k=kernel: [k.numpy().ravel()]))
            continue
        found = weights.shape(ref)
        if not _same_size(found, shape):
            raise CheckpointError(
                f"{path}: {ref} is {found}, expected {shape} for the reference {variant}"
            )
        parts.append(Part(key, shape, lambda r=ref: weights.chunks(r)))
    unused = sorted(n for n in names if f"backbone.{n}" not in own and n not in own)
    if unused:
        raise CheckpointError(
            f"{path}: layer {unused[0].rsplit('.', 1)[0]} is not part of the reference "
            f"{variant}; this net's layout is not one fcnseg imports"
        )
    meta = dataclasses.replace(
        model.meta,
        normalization=data.normalization,
        classes=data.classes,
        palette=tuple(voc_palette(len(data.classes))),
        extra={"imported_from": path.name, "dataset": data.name},
    )
    write_safetensors(out, parts, {MODEL_KEY: json.dumps(meta.to_json())})
    counts = " + ".join(f"{n} {c}" for n, c in heads.items()) if heads else str(num_classes)
    summary = (
        f"{variant} {backbone} (caffe geometry), {data.name}, {counts} classes, "
        f"{in_channels} input channels"
    )
    return Imported(out, backbone, meta, summary)


def _write_backbone(weights: _Weights, out: Path, name: str) -> Imported:
    """An ImageNet classifier's weights as the backbone ``name`` names them (Caffe's ``a/b``
    is ``a.b``; fully connected layers reshaped to the convolutions they become, §3.1); its
    classifiers (``fc8``, ``loss1/…``, ``loss2/…``, ``loss3/classifier``) are left out, as the
    FCN replaces them (§4.1)."""
    path = weights.path
    with torch.device("meta"):
        own = BACKBONES[name](geometry="modern", pretrained=False).state_dict()
    parts, taken = [], set()
    for key, tensor in own.items():
        layer, param = key.rsplit(".", 1)
        ref = f"{layer.replace('.', '/', 1)}.{param}"
        taken.add(ref)
        if ref not in weights.names() or not _same_size(weights.shape(ref), tensor.shape):
            found = weights.shape(ref) if ref in weights.names() else "missing"
            raise CheckpointError(
                f"{path}: {ref} is {found}, expected {tuple(tensor.shape)} for {name}; "
                "not the Caffe net it names"
            )
        parts.append(Part(key, tuple(tensor.shape), lambda r=ref: weights.chunks(r)))
    unused = sorted(n for n in weights.names() - taken if not n.startswith(("loss", "fc8")))
    if unused:
        raise CheckpointError(f"{path}: layer {unused[0]} is not part of {name}")
    write_safetensors(out, parts, {"fcnseg_backbone": name})
    summary = f"ImageNet weights of {name}: --backbone {name} --pretrained-backbone {out}"
    return Imported(out, name, None, summary)


def _same_size(found: tuple[int, ...], wanted: tuple[int, ...]) -> bool:
    """Whether a blob fills a tensor: legacy blobs are 4-d (1×1×1×C biases, 1×1×O×I inner
    products), and the same values in the same order as the tensor's."""
    return int(np.prod(found)) == int(np.prod(wanted))


def _dataset(
    path: Path, name: str | None, heads: dict[str, int] | None, classes: int, channels: int
) -> Dataset:
    if heads:
        if heads != {"sem": 33, "geo": 3}:
            raise CheckpointError(f"{path}: heads of {heads}, not SIFT Flow's 33 and 3 classes")
        return DATASETS["siftflow"]
    if name is None:
        name = BY_CLASSES.get(classes)
        if name == "nyud" and channels == 4:
            name = "nyud-rgbd"
        elif name == "nyud" and "hha" in path.stem and "color" not in path.stem:
            name = "nyud-hha"  # the authors' nyud-fcn32s-hha-heavy.caffemodel
    if name is None:
        raise CheckpointError(
            f"{path}: {classes} classes, which none of the authors' datasets has "
            "(VOC 21, NYUD 40, PASCAL-Context 60, SIFT Flow 33 + 3)"
        )
    data = DATASETS[name]
    if len(data.classes) != classes or data.normalization.channels != channels:
        raise CheckpointError(
            f"{path}: {classes} classes and {channels} input channels do not fit "
            f"--dataset {name} ({len(data.classes)} and {data.normalization.channels})"
        )
    return data


def _at_once(path: Path, scales: dict[str, float]) -> bool:
    if not scales:
        return False
    for name, value in scales.items():
        stride = {"scale_pool4": 16, "scale_pool3": 8}.get(name)
        if stride is None or not np.isclose(value, AT_ONCE_SCALE[stride], rtol=1e-5):
            raise CheckpointError(
                f"{path}: {name} scales by {value}, not as the all-at-once nets (PAMI §4.3)"
            )
    return True
