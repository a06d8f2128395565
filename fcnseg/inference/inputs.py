"""What the :class:`~.predictor.Predictor` accepts as an image, turned into a uint8 3×H×W RGB
tensor (or, for models of other input channels, a C×H×W tensor) without copying where the
input allows it."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..data.bands import as_bands
from ..data.decode import to_rgb_tensor
from ..errors import ConfigError

__all__ = ["ImageLike", "as_image_tensor", "check_batch"]

ImageLike = Image.Image | np.ndarray | Tensor


def as_image_tensor(image: ImageLike, channels: int = 3) -> Tensor:
    """An image as a uint8 3×H×W RGB tensor, without copying where the input allows it.

    Accepts a PIL image of any mode; a NumPy array H×W×3 (H×W or H×W×1 grey, H×W×4 with the
    alpha dropped) of uint8; a uint8 tensor 3×H×W (or 1×H×W grey). Anything whose meaning would
    be a guess — floats (0–1 or 0–255?), a channels-first array, an empty image — is refused
    with one line saying how to convert it.

    A model of ``channels`` other than 3 (grey, RGB-D, raster bands) takes H×W×C arrays,
    C×H×W tensors or PIL images of exactly that many channels, of any numeric type: their
    values are in the units the model was trained on.
    """
    if channels != 3:
        return _bands(image, channels)
    if isinstance(image, Image.Image):
        if 0 in image.size:
            raise ConfigError(f"the image is empty ({image.size[0]}×{image.size[1]} pixels)")
        return to_rgb_tensor(image)
    if isinstance(image, np.ndarray):
        _check_dtype(image.dtype == np.uint8, str(image.dtype), "image.astype(np.uint8)")
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
            hint = (
                "it looks channels-first: pass array.transpose(1, 2, 0)"
                if image.ndim == 3 and image.shape[0] in (1, 3, 4)
                else "pass H×W×3 RGB, H×W grey or H×W×4 RGBA"
            )
            raise ConfigError(
                f"a NumPy image must be H×W×C with C 1, 3 or 4, not shape {image.shape}; {hint}"
            )
        _check_size(image.shape[:2])
        if image.shape[-1] == 1:
            image = image.repeat(3, axis=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a read-only array (a memmap) is only ever read
            return torch.from_numpy(image[..., :3]).permute(2, 0, 1)
    if isinstance(image, Tensor):
        _check_dtype(image.dtype == torch.uint8, str(image.dtype), "image.to(torch.uint8)")
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ConfigError(
                f"a tensor image must be 3×H×W (or 1×H×W grey), not shape "
                f"{tuple(image.shape)}; a batch is N×3×H×W"
            )
        _check_size(image.shape[-2:])
        return image.expand(3, -1, -1) if image.shape[0] == 1 else image
    raise ConfigError(
        "expected a PIL image, a uint8 H×W×3 array or a uint8 3×H×W tensor, not "
        f"{type(image).__name__}"
    )


def check_batch(images: Tensor, channels: int = 3) -> Tensor:
    """A uint8 N×3×H×W batch (N×C×H×W of any numeric type for other ``channels``) as given,
    or one line on what is wrong with it."""
    if channels == 3:
        _check_dtype(images.dtype == torch.uint8, str(images.dtype), "images.to(torch.uint8)")
    if images.shape[1] != channels or images.shape[0] == 0:
        raise ConfigError(
            f"a batch must be N×{channels}×H×W with N ≥ 1, not shape {tuple(images.shape)}"
        )
    _check_size(images.shape[-2:])
    return images if channels == 3 or images.dtype == torch.uint8 else images.float()


def _bands(image: ImageLike, channels: int) -> Tensor:
    """An image for a model of ``channels`` input channels (not 3)."""
    if isinstance(image, Tensor):
        if image.ndim != 3 or image.shape[0] != channels:
            raise ConfigError(
                f"the model takes {channels}-channel images: a tensor must be "
                f"{channels}×H×W, not shape {tuple(image.shape)}"
            )
        _check_size(image.shape[-2:])
        return image if image.dtype == torch.uint8 else image.float()
    if isinstance(image, Image.Image):
        image = np.asarray(image)
    if not isinstance(image, np.ndarray):
        raise ConfigError(
            f"expected an H×W×{channels} array or a {channels}×H×W tensor, not "
            f"{type(image).__name__}"
        )
    return as_bands(image, channels, "the image")


def _check_dtype(ok: bool, dtype: str, cast: str) -> None:
    if not ok:
        raise ConfigError(
            f"images must be uint8 RGB 0–255, not {dtype}: scale floats in [0, 1] "
            f"by 255 and round, then {cast}"
        )


def _check_size(size: tuple[int, ...]) -> None:
    if 0 in tuple(size):
        raise ConfigError(f"the image is empty ({size[0]}×{size[1]} pixels)")
