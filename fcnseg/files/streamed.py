"""A safetensors file written tensor by tensor, for weights larger than memory should hold.

``safetensors.torch.save_file`` first turns every tensor into a ``bytes`` copy, so saving a
500 MB net takes 1 GB; the format itself (an 8-byte little-endian header length, a JSON header
of names, dtypes, shapes and byte offsets, then the raw little-endian values) can be written
from its parts one at a time. Here each part is a callable that yields its float32 values in
chunks, so a converter can copy weights from another file without holding them. The result is
read by the safetensors library like any other file (tested).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_write

__all__ = ["Part", "write_safetensors"]


@dataclass(frozen=True)
class Part:
    """One float32 tensor to write: its name, shape, and its values as chunks of arrays."""

    name: str
    shape: tuple[int, ...]
    chunks: Callable[[], Iterable[np.ndarray]]


def write_safetensors(path: str | Path, parts: list[Part], metadata: dict[str, str]) -> None:
    """Write ``parts`` as one safetensors file at ``path``, atomically."""
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for part in parts:
        size = 4 * int(np.prod(part.shape, dtype=np.int64))
        header[part.name] = {
            "dtype": "F32",
            "shape": list(part.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the values start 8-byte aligned, as the format advises

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as out:
            out.write(len(text).to_bytes(8, "little"))
            out.write(text)
            for part in parts:
                written = 0
                for chunk in part.chunks():
                    data = np.ascontiguousarray(chunk, dtype="<f4")
                    out.write(data)  # its buffer: no copy
                    written += data.size
                if written != int(np.prod(part.shape, dtype=np.int64)):
                    raise ValueError(f"{part.name}: {written} values for shape {part.shape}")

    atomic_write(path, write)
