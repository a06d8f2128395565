"""Receptive fields and coordinate maps (paper §3.1).

Every layer of a convnet maps a window of its input to one output position. For a layer with
kernel ``k`` and stride ``s`` (and padding ``p``), composition follows the rule of §3.1::

    f_ks ∘ g_k's' = (f ∘ g)_{k' + (k - 1) s', s s'}

A :class:`Field` carries that size and stride together with an *offset*: the input coordinate of
the centre of output position 0. The offset is what aligns two maps of the same stride: the skip
architecture (§4.2) crops a shallow score map by ``(offset_a - offset_b) / stride`` positions so
that it lies exactly over the upsampled deep one. Nothing in fcnseg hard-codes those crops; they
are computed here, from the layers themselves.

:func:`receptive_field` walks convolutions, poolings, transposed convolutions, ``nn.Sequential``
and, through ``torch.fx``, arbitrary graphs of them (branches are merged by taking the union of
their fields; a channel gate pooled over the whole map, as squeeze-and-excitation nets have,
makes the field unbounded without moving it).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

__all__ = [
    "Field",
    "GeometryError",
    "crop_offset",
    "layer_field",
    "receptive_field",
    "transposed_field",
]


class GeometryError(ValueError):
    """A module whose spatial effect cannot be expressed as a receptive field."""


@dataclass(frozen=True)
class Field:
    """Receptive field of one output position, in input pixels.

    Attributes:
        size: extent of the window, in input pixels.
        stride: distance, in input pixels, between neighbouring output positions
            (fractional after upsampling).
        offset: input coordinate of the centre of output position 0 (negative when the layer
            pads, as the reference nets' 100-pixel pad does).
    """

    size: float
    stride: float
    offset: float

    def then(self, f: Field) -> Field:
        """The field of ``f`` applied after ``self`` (``f ∘ self``): the composition rule."""
        return Field(
            size=self.size + (f.size - 1) * self.stride,
            stride=self.stride * f.stride,
            offset=self.offset + self.stride * f.offset,
        )

    def union(self, other: Field) -> Field:
        """The field of a map that merges two branches of the same stride (sum, concat)."""
        if not math.isclose(self.stride, other.stride):
            raise GeometryError(f"cannot merge maps of stride {self.stride} and {other.stride}")
        unbounded = [f.offset for f in (self, other) if math.isinf(f.size)]
        if unbounded:  # the rule below as the unbounded windows grow: centred on them
            return Field(size=math.inf, stride=self.stride, offset=sum(unbounded) / len(unbounded))
        lo = min(self.offset - (self.size - 1) / 2, other.offset - (other.size - 1) / 2)
        hi = max(self.offset + (self.size - 1) / 2, other.offset + (other.size - 1) / 2)
        return Field(size=hi - lo + 1, stride=self.stride, offset=(lo + hi) / 2)


IDENTITY = Field(size=1, stride=1, offset=0)


def _pair0(v: int | tuple[int, ...]) -> int:
    # Fields are computed along the vertical axis; every net here has square kernels.
    return v[0] if isinstance(v, tuple) else int(v)


def _window(kernel: int, stride: int, padding: int, dilation: int = 1) -> Field:
    k = dilation * (kernel - 1) + 1
    return Field(size=k, stride=stride, offset=(k - 1) / 2 - padding)


def transposed_field(kernel: int, stride: int, padding: int) -> Field:
    """The field of a transposed convolution: the inverse map of a convolution, stride
    ``1/s``, an input window of ``ceil(k/s)`` positions, centred so that the transposed
    convolution of a convolution keeps coordinates."""
    return Field(
        size=math.ceil(kernel / stride),
        stride=1 / stride,
        offset=(padding - (kernel - 1) / 2) / stride,
    )


def layer_field(module: nn.Module) -> Field | None:
    """The field of one layer, or ``None`` if the layer does not act on space at all."""
    if isinstance(module, nn.ConvTranspose2d):
        k = _pair0(module.dilation) * (_pair0(module.kernel_size) - 1) + 1
        return transposed_field(k, _pair0(module.stride), _pair0(module.padding))
    if isinstance(module, nn.Conv2d):
        if isinstance(module.padding, str):  # "same" keeps the centre in place
            pad = 0 if module.padding == "valid" else (_pair0(module.kernel_size) - 1) // 2
        else:
            pad = _pair0(module.padding)
        return _window(
            _pair0(module.kernel_size), _pair0(module.stride), pad, _pair0(module.dilation)
        )
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        dilation = _pair0(module.dilation) if isinstance(module, nn.MaxPool2d) else 1
        return _window(
            _pair0(module.kernel_size),
            _pair0(module.stride or module.kernel_size),
            _pair0(module.padding),
            dilation,
        )
    if isinstance(module, nn.ZeroPad2d):
        return Field(size=1, stride=1, offset=-module.padding[2])  # (left, right, top, bottom)
    if hasattr(module, "field") and isinstance(module.field, Field):
        return module.field  # fcnseg's own spatial layers (crops, fixed upsampling) say theirs
    if isinstance(module, (nn.Linear, nn.Flatten, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        raise GeometryError(
            f"{type(module).__name__} has no receptive field: it is not convolutional "
            "(convolutionalize the net first, paper §3.1)"
        )
    if isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
        return None  # normalisation (timm fuses an activation into it) acts per position
    if isinstance(module, nn.Upsample) or hasattr(module, "kernel_size"):
        raise GeometryError(f"no field rule for {type(module).__name__}")
    if not any(True for _ in module.children()):
        return None  # pointwise: activations, normalisation, dropout, identity
    raise TypeError  # a container: the caller walks it


# Functions and tensor methods that act on each position alone (or only on channels).
_POINTWISE = {
    operator.add,
    operator.sub,
    operator.mul,
    operator.truediv,
    operator.iadd,
    operator.imul,
    torch.add,
    torch.mul,
    torch.cat,
    torch.relu,
    torch.sigmoid,
    torch.tanh,
    torch.flatten,
    F.relu,
    F.relu6,
    F.gelu,
    F.silu,
    F.hardswish,
    F.hardsigmoid,
    F.sigmoid,
    F.batch_norm,
    F.dropout,
    F.leaky_relu,
    F.elu,
    torch.clamp,
}
_POINTWISE_METHODS = {
    "add",
    "add_",
    "mul",
    "mul_",
    "relu",
    "relu_",
    "sigmoid",
    "clamp",
    "clamp_",
    "contiguous",
    "float",
    "to",
    "type_as",
    "div",
    "div_",
    "sub",
    "tanh",
}


def _fx_field(module: nn.Module, start: Field) -> Field:
    try:
        graph = fx.symbolic_trace(module).graph
    except Exception as exc:  # fx cannot follow data-dependent control flow
        raise GeometryError(f"cannot trace {type(module).__name__}: {exc}") from None
    fields: dict[fx.Node, Field] = {}
    submodules = dict(module.named_modules())
    for node in graph.nodes:
        inputs = [fields[a] for a in node.all_input_nodes if a in fields]
        if node.op == "placeholder":
            fields[node] = start
        elif node.op == "get_attr" or not inputs:
            continue  # constants and parameters carry no field
        elif _global_pooling(node, submodules):
            # Squeeze-and-excitation gates weigh each channel by its mean over the whole map and
            # broadcast it back: every position then sees the whole image, yet none moves.
            fields[node] = Field(size=math.inf, stride=inputs[0].stride, offset=inputs[0].offset)
        elif node.op == "call_module":
            fields[node] = receptive_field(submodules[node.target], inputs[0])
        elif (node.op == "call_function" and node.target is getattr) or (
            node.op == "call_method" and node.target in ("size", "dim", "numel")
        ):
            continue  # shapes and attributes, not feature maps
        elif node.op == "call_function" and node.target is operator.getitem:
            fields[node] = _getitem_field(node, inputs[0])
        elif (node.op == "call_function" and node.target in _POINTWISE) or (
            node.op == "call_method" and node.target in _POINTWISE_METHODS
        ):
            merged = inputs[0]
            for f in inputs[1:]:
                merged = merged.union(f)
            fields[node] = merged
        elif node.op == "output":
            return inputs[0]
        else:
            raise GeometryError(f"{type(module).__name__}: no field rule for {node.target}")
    raise GeometryError(f"{type(module).__name__} has no output")


def _global_pooling(node: fx.Node, submodules: dict[str, nn.Module]) -> bool:
    """Whether ``node`` pools each channel over the whole map, keeping it 4-D to broadcast."""
    if node.op == "call_module":
        layer = submodules[node.target]
        return isinstance(layer, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) and (
            layer.output_size in (1, (1, 1))
        )
    if node.op == "call_function" and node.target in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
        return _argument(node, "output_size") in (1, (1, 1))
    reduces = (node.op == "call_method" and node.target in ("mean", "amax")) or (
        node.op == "call_function" and node.target in (torch.mean, torch.amax)
    )
    if not reduces or not node.kwargs.get("keepdim", False):
        return False
    dims = _argument(node, "dim")
    return isinstance(dims, (tuple, list)) and {d % 4 for d in dims} == {2, 3}


def _argument(node: fx.Node, name: str) -> object:
    """The argument after the tensor, given by position or by ``name``."""
    return node.args[1] if len(node.args) > 1 else node.kwargs.get(name)


def _getitem_field(node: fx.Node, field: Field) -> Field:
    index = node.args[1]
    if isinstance(index, int):  # picking one output of a tuple: same field
        return field
    spatial = index[2] if isinstance(index, tuple) and len(index) > 2 else slice(None)
    if not isinstance(spatial, slice) or not isinstance(spatial.start or 0, int):
        raise GeometryError(f"no field rule for indexing {index}")
    return field.then(Field(size=1, stride=1, offset=spatial.start or 0))


def receptive_field(net: nn.Module, start: Field = IDENTITY) -> Field:
    """The receptive field of ``net``'s output, composed layer by layer (§3.1).

    Args:
        net: a layer, an ``nn.Sequential``, or any module that ``torch.fx`` can trace whose
            layers are convolutions, poolings, transposed convolutions and pointwise ops.
        start: the field of ``net``'s input (identity for an image).

    Returns:
        The :class:`Field` of one output position in the coordinates of the image.

    Raises:
        GeometryError: for a layer that is not convolutional (``Linear``, adaptive pooling).
    """
    try:
        f = layer_field(net)
        return start if f is None else start.then(f)
    except TypeError:
        pass
    if isinstance(net, nn.Sequential):
        for layer in net:
            start = receptive_field(layer, start)
        return start
    return _fx_field(net, start)


def crop_offset(field: Field, reference: Field) -> float:
    """Positions to crop from the map of ``field`` so that it lies over the map of ``reference``.

    Both maps must have the same stride. The result is exact for the reference nets (an integer);
    a fractional value means no crop can align the two maps.
    """
    if not math.isclose(field.stride, reference.stride):
        raise GeometryError(f"maps of stride {field.stride} and {reference.stride} do not align")
    return (reference.offset - field.offset) / field.stride
