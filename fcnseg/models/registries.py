"""The two registries of the models layer, in a module of their own so that every module of
the layer (the metadata schema included) can name them without importing the builders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..registry import Registry

__all__ = ["BACKBONES", "MODELS"]

#: Backbone builders by name: ``builder(*, geometry, pretrained) -> Backbone``.
BACKBONES: Registry[Callable[..., Any]] = Registry("backbone")
#: FCN builders by variant name: ``builder(*, num_classes, backbone, geometry, ...) -> FCN``.
MODELS: Registry[Callable[..., Any]] = Registry("model")
