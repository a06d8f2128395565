"""Files: model files, training checkpoints, the reference nets' weights and ONNX export.

* :mod:`.modelfile`: :func:`save` and :func:`load`, one safetensors file per model with its
  typed metadata (``load`` also rebuilds the model of a training checkpoint);
* :mod:`.checkpoint`: the resumable training checkpoint's layout;
* :mod:`.header`: the metadata header both share, read without the tensors;
* :mod:`.reference`: the Caffe reference nets' weights (:func:`load_reference`);
* :mod:`.caffe`: the authors' trained nets imported (:func:`import_caffe`), through
  :mod:`.protobuf` (the ``.caffemodel`` format) and :mod:`.streamed` (writing without copies);
* :mod:`.hub` and :mod:`.publish`: model files by address (``hf://``, ``https://``) and
  publishing on the Hugging Face Hub;
* :mod:`.onnx`: export to ONNX, checked against PyTorch, and the exported file run by ONNX
  Runtime;
* :mod:`.atomic`: every write atomic, every failure one line.

Owns: bytes on disk. May import: :mod:`fcnseg.models` and below.
"""

from .atomic import atomic_write, check_writable
from .caffe import import_caffe
from .modelfile import load, read_metadata, read_weights, rebuild, save
from .reference import load_reference

__all__ = [
    "atomic_write",
    "check_writable",
    "import_caffe",
    "load",
    "load_reference",
    "read_metadata",
    "read_weights",
    "rebuild",
    "save",
]
