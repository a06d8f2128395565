"""Caffe's ``.caffemodel`` read without Caffe: the protobuf wire format and the schema subset
the weights need, read as a stream.

A ``.caffemodel`` is one serialised ``NetParameter`` message. Its layers come in Caffe's new
format (``layer``, field 100: ``LayerParameter`` with a string ``type``) or the old one
(``layers``, field 2: ``V1LayerParameter`` with an enum type); each holds its weights as
``BlobProto`` messages: a shape (``BlobShape``, or the legacy num/channels/height/width) and the
values as packed float32 (or float64) numbers.

Nothing but the layer names, types and blob shapes is parsed: every other field is skipped by
its length, and a blob's values are located, not read (:class:`Blob` remembers where they are),
so a 500 MB file is walked in a few milliseconds and never held in memory; the values are copied
later, blob by blob.

Field numbers, from Caffe's ``caffe.proto``:

================  =====================================================================
NetParameter      1 name · 2 layers (V1LayerParameter) · 100 layer (LayerParameter)
LayerParameter    1 name · 2 type (string) · 7 blobs
V1LayerParameter  4 name · 5 type (enum) · 6 blobs
BlobProto         1 num · 2 channels · 3 height · 4 width · 5 data (float) · 7 shape ·
                  8 double_data
BlobShape         1 dim (int64)
================  =====================================================================
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import CheckpointError

__all__ = ["Blob", "Layer", "read_caffemodel"]

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
# V1LayerParameter.LayerType values of the layers that hold weights.
V1_TYPES = {4: "Convolution", 14: "InnerProduct", 39: "Deconvolution"}


class WireError(ValueError):
    """The bytes are not the protobuf message expected (said where, for the one line)."""


@dataclass(frozen=True)
class Blob:
    """One weight array of a layer: its shape and where its values lie in the file."""

    shape: tuple[int, ...]
    offset: int
    count: int
    dtype: str  # "<f4" (data) or "<f8" (double_data)

    def read(self, f: BinaryIO) -> np.ndarray:
        """The values, float32, in ``shape``."""
        f.seek(self.offset)
        values = np.fromfile(f, dtype=self.dtype, count=self.count)
        if values.size != self.count:
            raise WireError("a blob's values end past the end of the file")
        return values.astype(np.float32, copy=False).reshape(self.shape)


@dataclass(frozen=True)
class Layer:
    """A layer of the net: its name, type and weight blobs (none for most layer types)."""

    name: str
    type: str
    blobs: tuple[Blob, ...]


class _Message:
    """The fields of one message lying in ``[start, end)`` of the file."""

    def __init__(self, f: BinaryIO, start: int, end: int) -> None:
        self.f, self.start, self.end = f, start, end

    def fields(self) -> Iterator[tuple[int, int, int]]:
        """(field number, wire type, value): the value of a varint or fixed field, or for a
        length-delimited one its length, with the file positioned at its first byte."""
        f, pos = self.f, self.start
        while pos < self.end:
            f.seek(pos)
            key = self._varint()
            number, wire = key >> 3, key & 7
            if number == 0:
                raise WireError("a field numbered 0")
            if wire == VARINT:
                value = self._varint()
            elif wire in (FIXED64, FIXED32):
                size = 8 if wire == FIXED64 else 4
                data = f.read(size)
                if len(data) < size:
                    raise WireError("the file ends inside a field")
                value = int.from_bytes(data, "little")
            elif wire == LENGTH:
                value = self._varint()
                if f.tell() + value > self.end:
                    raise WireError("a field runs past the end of its message (truncated?)")
            else:
                raise WireError(f"wire type {wire}, which protobuf messages do not use")
            here = f.tell()
            yield number, wire, value
            pos = here + (value if wire == LENGTH else 0)
        if pos != self.end:
            raise WireError("a message's last field runs past its end")

    def _varint(self) -> int:
        result, shift = 0, 0
        while True:
            byte = self.f.read(1)
            if not byte:
                raise WireError("the file ends inside a field (truncated?)")
            result |= (byte[0] & 0x7F) << shift
            if byte[0] < 0x80:
                return result
            shift += 7
            if shift > 63:
                raise WireError("a varint longer than 10 bytes")

    def sub(self, length: int) -> _Message:
        here = self.f.tell()
        return _Message(self.f, here, here + length)

    def text(self, length: int) -> str:
        data = self.f.read(length)
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise WireError("a name that is not text") from None


def _expect(wire: int, wanted: int, what: str) -> None:
    if wire != wanted:
        raise WireError(f"{what} has the wrong wire type for Caffe's schema")


def _blob(message: _Message) -> Blob:
    legacy = [1, 1, 1, 1]  # num, channels, height, width
    shape: list[int] | None = None
    located: tuple[int, int, str] | None = None
    for number, wire, value in message.fields():
        if number in (1, 2, 3, 4):
            _expect(wire, VARINT, "a blob dimension")
            legacy[number - 1] = value
        elif number == 7:
            _expect(wire, LENGTH, "a blob shape")
            shape = _dims(message.sub(value))
        elif number in (5, 8):  # data (float), double_data
            size = 4 if number == 5 else 8
            if wire != LENGTH:
                raise WireError("unpacked blob values; re-save the model with a newer Caffe")
            located = (message.f.tell(), value // size, "<f4" if size == 4 else "<f8")
            if value % size:
                raise WireError("a blob's values are not whole numbers")
    if located is None:
        raise WireError("a blob without values")
    dims = tuple(shape if shape is not None else legacy)
    if int(np.prod(dims)) != located[1]:
        raise WireError(f"a blob of shape {dims} holds {located[1]} values")
    return Blob(dims, *located)


def _dims(message: _Message) -> list[int]:
    dims: list[int] = []
    for number, wire, value in message.fields():
        if number != 1:
            continue
        if wire == VARINT:
            dims.append(value)
        else:  # packed
            _expect(wire, LENGTH, "a shape")
            end = message.f.tell() + value
            while message.f.tell() < end:
                dims.append(message._varint())
    return dims


def _layer(message: _Message, new_format: bool) -> Layer:
    name_field, type_field, blob_field = (1, 2, 7) if new_format else (4, 5, 6)
    name, kind, blobs = "", "", []
    for number, wire, value in message.fields():
        if number == name_field:
            _expect(wire, LENGTH, "a layer name")
            name = message.text(value)
        elif number == type_field:
            if new_format:
                _expect(wire, LENGTH, "a layer type")
                kind = message.text(value)
            else:
                _expect(wire, VARINT, "a layer type")
                kind = V1_TYPES.get(value, f"V1 type {value}")
        elif number == blob_field:
            _expect(wire, LENGTH, "a blob")
            blobs.append(_blob(message.sub(value)))
    return Layer(name, kind, tuple(blobs))


def read_caffemodel(path: str | Path, f: BinaryIO) -> tuple[str, list[Layer]]:
    """The net's name and its layers (both formats, in file order) from the open ``f``.

    Raises:
        CheckpointError: the bytes are not a Caffe ``NetParameter`` (truncated, or another
            kind of file or protobuf), said in one line.
    """
    f.seek(0, 2)
    size = f.tell()
    net_name, layers = "", []
    try:
        for number, wire, value in _Message(f, 0, size).fields():
            if number == 1:
                _expect(wire, LENGTH, "the net's name")
                net_name = _Message(f, 0, size).text(value)
            elif number in (2, 100):
                _expect(wire, LENGTH, "a layer")
                here = f.tell()
                layers.append(_layer(_Message(f, here, here + value), new_format=number == 100))
    except WireError as exc:
        raise CheckpointError(
            f"{path}: not a Caffe model ({exc}); pass the .caffemodel the authors released, whole"
        ) from None
    if not any(layer.blobs for layer in layers):
        raise CheckpointError(
            f"{path}: a protobuf file, but no Caffe layer with weights is in it; "
            "pass a .caffemodel (weights), not a .prototxt or another kind of model"
        )
    return net_name, layers
