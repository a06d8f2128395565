"""import-caffe: the authors' .caffemodel files in the real protobuf wire format, written here
with random blobs under the reference nets' layer names and shapes, imported without Caffe and
compared with the same weights loaded through load_reference; the port's .pth through the same
command; damaged and foreign files as one line."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import fcnseg
from fcnseg.cli import main
from fcnseg.data.readers.paper import SIFTFLOW_CLASSES
from fcnseg.data.readers.voc import VOC_CLASSES
from fcnseg.errors import CheckpointError, ConfigError
from fcnseg.models.normalization import CAFFE_BGR

V1_TYPE = {"Convolution": 4, "Deconvolution": 39}


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def text(number: int, value: str) -> bytes:
    data = value.encode()
    return field(number, 2) + varint(len(data)) + data


def blob_header(array: np.ndarray, legacy: bool) -> bytes:
    """A BlobProto up to its values: the shape (BlobShape, or num/channels/height/width),
    then the packed float field's key and length."""
    if legacy:
        dims = (1,) * (4 - array.ndim) + array.shape
        shape = b"".join(field(i + 1, 0) + varint(d) for i, d in enumerate(dims))
    else:
        packed = b"".join(varint(d) for d in array.shape)
        inner = field(1, 2) + varint(len(packed)) + packed
        shape = field(7, 2) + varint(len(inner)) + inner
    return shape + field(5, 2) + varint(4 * array.size)


def write_caffemodel(path: Path, layers: dict[str, list[torch.Tensor]], *, v1: bool) -> None:
    """A NetParameter: a name, then one layer per entry (``layer``, or the old ``layers``),
    each with a bottom (a field the reader must skip), its type and its blobs."""
    with open(path, "wb") as f:
        f.write(text(1, "FCN"))
        for name, blobs in layers.items():
            kind = "Deconvolution" if name.startswith("upscore") else "Convolution"
            arrays = [b.numpy().astype("<f4") for b in blobs]
            headers = [blob_header(a, legacy=v1) for a in arrays]
            blob_field = 6 if v1 else 7
            sizes = [len(h) + 4 * a.size for h, a in zip(headers, arrays, strict=True)]
            if v1:
                head = text(2, "bottom") + text(4, name) + field(5, 0) + varint(V1_TYPE[kind])
            else:
                head = text(1, name) + text(2, kind) + text(3, "bottom")
            body = len(head) + sum(len(field(blob_field, 2) + varint(s)) + s for s in sizes)
            f.write(field(2 if v1 else 100, 2) + varint(body) + head)
            for h, a, s in zip(headers, arrays, sizes, strict=True):
                f.write(field(blob_field, 2) + varint(s) + h)
                f.write(a.tobytes())


def as_layers(state: dict[str, torch.Tensor]) -> dict[str, list[torch.Tensor]]:
    layers: dict[str, list[torch.Tensor]] = {}
    for key, tensor in state.items():
        layers.setdefault(key.rsplit(".", 1)[0], []).append(tensor)
    return layers


def reference_named(model: fcnseg.FCN, seed: int) -> dict[str, torch.Tensor]:
    """``model``'s weights as the reference nets name and store them: no ``backbone.`` prefix,
    the final fixed upsampling as Caffe's C×C×k×k kernel, zero off the diagonal; the score
    layers (zero when built) and the learned upsamplings random."""
    g = torch.Generator().manual_seed(seed)
    finals = tuple(f"{model.final}{s}." for s in model.suffixes)
    state = {}
    for key, tensor in model.state_dict().items():
        ref = key.removeprefix("backbone.")
        if ref.startswith(finals):
            c = tensor.shape[0]
            full = torch.zeros(c, c, *tensor.shape[2:])
            full[range(c), range(c)] = tensor[:, 0]
            tensor = full
        elif ref.startswith(("score", "upscore")):
            tensor = tensor + torch.randn(tensor.shape, generator=g) * 0.01
        state[ref] = tensor
    return state


@pytest.fixture(scope="module")
def voc_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return reference_named(fcnseg.fcn8s(num_classes=21, backbone="vgg16", geometry="caffe"), 0)


def test_caffemodel_imports_as_load_reference_loads_it(voc_state, tmp_path, capsys) -> None:
    net = tmp_path / "fcn8s-heavy-pascal.caffemodel"
    write_caffemodel(net, as_layers(voc_state), v1=False)
    out = tmp_path / "voc-fcn8s.safetensors"
    tracemalloc.start()
    assert main(["import-caffe", str(net), "--out", str(out)]) == 0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "fcn8s vgg16 (caffe geometry), PASCAL VOC, 21 classes" in capsys.readouterr().out
    # Streamed: a 540 MB net is copied in chunks, never held.
    assert peak < net.stat().st_size / 10
    model = fcnseg.load(out).eval()
    assert model.meta.classes == tuple(VOC_CLASSES) and model.normalization == CAFFE_BGR
    assert (model.meta.variant, model.meta.geometry) == ("fcn8s", "caffe")
    reference = fcnseg.load_reference(voc_state).eval()
    x = torch.randint(0, 256, (1, 3, 37, 45), dtype=torch.uint8)
    with torch.no_grad():
        norm = model.normalization(x)
        assert torch.equal(model(norm), reference(norm))

    # The PyTorch port's .pth state dict, weights-only, through the same command.
    port = tmp_path / "fcn8s_from_caffe.pth"
    torch.save(voc_state, port)
    again = tmp_path / "from-pth.safetensors"
    assert main(["import-caffe", str(port), "--out", str(again)]) == 0
    ours, theirs = load_file(str(out)), load_file(str(again))
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.filterwarnings("ignore")
def test_old_layers_format_two_headed_siftflow(tmp_path) -> None:
    torch.manual_seed(1)
    heads = {"sem": 33, "geo": 3}
    original = fcnseg.fcn16s(num_classes=heads, backbone="vgg16", geometry="caffe").eval()
    state = reference_named(original, 1)
    net = tmp_path / "siftflow-fcn16s-heavy.caffemodel"
    write_caffemodel(net, as_layers(state), v1=True)  # legacy 4-d blob shapes too
    out = tmp_path / "siftflow.safetensors"
    meta = fcnseg.import_caffe(net, out).meta
    assert meta.heads == (("sem", 33), ("geo", 3))
    assert meta.classes == (*SIFTFLOW_CLASSES["semantic"], *SIFTFLOW_CLASSES["geometric"])
    model = fcnseg.load(out).eval()
    original.load_state_dict(
        {k: v for k, v in model.state_dict().items() if not k.startswith("upscore16")},
        strict=False,
    )
    assert torch.equal(original.score_fr_geo.weight, state["score_fr_geo.weight"])
    x = torch.randn(1, 3, 40, 33)
    with torch.no_grad():
        assert torch.equal(model(x), original(x))


def test_damaged_and_foreign_files_are_one_line(voc_state, tmp_path, capsys) -> None:
    small = {k: v for k, v in voc_state.items() if k.startswith(("conv1_", "score_fr"))}
    whole = tmp_path / "whole.caffemodel"
    write_caffemodel(whole, as_layers(small), v1=False)
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    out = tmp_path / "m.safetensors"
    assert main(["import-caffe", str(cut), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a Caffe model" in err[0] and "truncated" in err[0]
    assert not out.exists() and not list(tmp_path.glob(".m.safetensors*"))
    with pytest.raises(
        CheckpointError, match="has no conv2_1.weight, which the reference fcn32s has"
    ):
        fcnseg.import_caffe(whole, out)
    prototxt = tmp_path / "deploy.caffemodel"
    prototxt.write_bytes(text(1, "FCN") + field(100, 2) + varint(9) + text(1, "conv1_1")[:9])
    with pytest.raises(CheckpointError, match="no Caffe layer with weights"):
        fcnseg.import_caffe(prototxt, out)
    foreign = tmp_path / "model.caffemodel"
    foreign.write_bytes(field(1, 0) + varint(7) + field(8, 3))  # an ONNX-like varint, a group
    with pytest.raises(CheckpointError, match="not a Caffe model"):
        fcnseg.import_caffe(foreign, out)
    assert main(["import-caffe", str(whole), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "name a .safetensors file" in capsys.readouterr().err


def test_bvlc_googlenet_imports_as_backbone_weights(tmp_path, capsys) -> None:
    torch.manual_seed(2)
    backbone = fcnseg.models.build_backbone("bvlc_googlenet")
    layers: dict[str, list[torch.Tensor]] = {}
    for key, tensor in backbone.state_dict().items():
        layer = key.rsplit(".", 1)[0].replace(".", "/", 1)  # inception_3a/5x5_reduce
        layers.setdefault(layer, []).append(torch.randn_like(tensor))
    layers["loss1/conv"] = [torch.randn(128, 512, 1, 1), torch.randn(128)]  # auxiliary
    layers["loss3/classifier"] = [torch.randn(1000, 1024), torch.randn(1000)]
    net = tmp_path / "bvlc_googlenet.caffemodel"
    write_caffemodel(net, layers, v1=True)
    out = tmp_path / "googlenet.safetensors"
    assert main(["import-caffe", str(net), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"--backbone bvlc_googlenet --pretrained-backbone {out}" in said
    model = fcnseg.fcn32s(num_classes=5, backbone="bvlc_googlenet", pretrained_backbone=str(out))
    state = model.backbone.state_dict()
    assert torch.equal(state["inception_4e.5x5.weight"], layers["inception_4e/5x5"][0])
    assert torch.equal(state["conv1.7x7_s2.bias"], layers["conv1/7x7_s2"][1])
    with pytest.raises(ConfigError, match="import-caffe FILE.caffemodel --out bvlc_googlenet"):
        fcnseg.fcn32s(num_classes=5, backbone="bvlc_googlenet", pretrained_backbone=True)


def fcn_alexnet_prototxt(s: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """voc-fcn-alexnet as its prototxt computes, written out: CaffeNet (groups, LRN after the
    pooling), fc6/fc7 as convolutions, upscore 63 wide at stride 32, score cropped by 18."""

    def conv(h: torch.Tensor, name: str, **kw: int) -> torch.Tensor:
        return F.relu(F.conv2d(h, s[f"{name}.weight"], s[f"{name}.bias"], **kw))

    def pool(h: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(h, 3, 2, ceil_mode=True)

    h = F.local_response_norm(pool(conv(x, "conv1", stride=4, padding=100)), 5, 1e-4, 0.75)
    h = F.local_response_norm(pool(conv(h, "conv2", padding=2, groups=2)), 5, 1e-4, 0.75)
    h = conv(h, "conv3", padding=1)
    h = pool(conv(conv(h, "conv4", padding=1, groups=2), "conv5", padding=1, groups=2))
    h = conv(conv(h, "fc6"), "fc7")
    h = F.conv2d(h, s["score_fr.weight"], s["score_fr.bias"])
    h = F.conv_transpose2d(h, s["upscore.weight"], stride=32)
    return h[..., 18 : 18 + x.shape[-2], 18 : 18 + x.shape[-1]]


def test_fcn_alexnet_imports_and_computes_as_its_prototxt(tmp_path) -> None:
    torch.manual_seed(3)
    built = fcnseg.fcn32s(num_classes=21, backbone="caffenet", geometry="caffe")
    state = reference_named(built, 3)
    for key, tensor in state.items():
        if key.startswith(("conv", "fc")):
            fan_in = tensor[0].numel() if tensor.dim() > 1 else 1
            state[key] = torch.randn_like(tensor) * (2 / fan_in) ** 0.5
    net = tmp_path / "fcn-alexnet-pascal.caffemodel"
    write_caffemodel(net, as_layers(state), v1=False)
    imported = fcnseg.import_caffe(net, tmp_path / "alexnet.safetensors")
    assert imported.summary.startswith("fcn32s caffenet (caffe geometry), PASCAL VOC, 21 classes")
    model = fcnseg.load(imported.path).eval()
    x = torch.randn(1, 3, 61, 50) * 50
    with torch.no_grad():
        ours, theirs = model(x), fcn_alexnet_prototxt(state, x)
    assert ours.shape == theirs.shape == (1, 21, 61, 50)
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4 * theirs.abs().max().item())
