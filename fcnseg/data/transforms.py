"""Joint image/mask transforms (torchvision ``transforms.v2`` on tv_tensors) and batching.

Geometry is applied to image and mask together so they stay aligned pixel for pixel; the mask
is only ever resized with nearest-neighbour (labels must not be averaged) and padded with the
ignore label (padding is not a class).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

JointTransform = Callable[[tv_tensors.Image, tv_tensors.Mask], tuple[Any, Any]]


class RandomScale(v2.Transform):
    """Resize by a factor drawn uniformly from ``scale``, image bilinear, mask nearest.

    The mask uses *centre-aligned* nearest (``NEAREST_EXACT``): each output pixel takes the
    label of the source pixel under its centre, the same sampling grid bilinear uses for the
    image. PyTorch's plain ``NEAREST`` is shifted by up to a pixel against it.
    """

    def __init__(self, scale: tuple[float, float]) -> None:
        super().__init__()
        self.scale = scale

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = next(
            F.get_size(x) for x in flat_inputs if isinstance(x, (tv_tensors.Image, tv_tensors.Mask))
        )
        low, high = self.scale
        factor = low + (high - low) * torch.rand(()).item()
        return {"size": [max(1, round(height * factor)), max(1, round(width * factor))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask):
            return F.resize(inpt, params["size"], interpolation=v2.InterpolationMode.NEAREST_EXACT)
        if isinstance(inpt, tv_tensors.Image):
            return F.resize(inpt, params["size"], antialias=True)
        return inpt


class RandomQuarterTurn(v2.Transform):
    """Turn by 0, 90, 180 or 270 degrees, drawn uniformly: with both flips, all eight
    orientations of the square. Exact (a transpose and a flip, no interpolation) and cheap.
    """

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"turns": int(torch.randint(4, ()))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, (tv_tensors.Image, tv_tensors.Mask)):
            return tv_tensors.wrap(torch.rot90(inpt, params["turns"], dims=(-2, -1)), like=inpt)
        return inpt


def train_transform(
    *,
    crop: tuple[int, int] | None,
    scale: tuple[float, float] = (0.5, 2.0),
    hflip: bool = True,
    vflip: bool = False,
    rot90: bool = False,
    rotate: float = 0.0,
    jitter: float = 0.0,
    ignore_index: int,
) -> JointTransform:
    """Training augmentation: random scale, random ``crop`` (height, width), rotation, flips,
    quarter turns, jitter.

    Images smaller than the crop are padded with 0 (image) and ``ignore_index`` (mask), so the
    padding never counts in the loss. ``crop=None`` keeps whole images (batch them with
    :func:`collate_pad`). ``vflip`` and ``rot90`` are for images with no up (fundus
    photographs, microscopy, aerial rasters); a quarter turn swaps height and width, so with a
    crop it needs a square one. ``jitter`` is the brightness/contrast/saturation strength
    applied to the image only; 0 turns it off, as does ``scale=(1, 1)`` for scaling.
    ``rotate`` turns by an angle drawn from ±``rotate`` degrees (image bilinear, mask nearest,
    corners outside the image filled as padding is), for images with no up: with ``rot90``,
    45 reaches every angle.
    """
    if rot90 and crop is not None and crop[0] != crop[1]:
        raise ValueError(f"quarter turns need a square crop, not {crop[0]}×{crop[1]}")
    steps: list[Any] = []
    low, high = scale  # also from a config's list
    if (low, high) != (1.0, 1.0):
        steps.append(RandomScale((low, high)))
    fill = {tv_tensors.Image: 0, tv_tensors.Mask: ignore_index}
    turn = v2.RandomRotation(rotate, interpolation=v2.InterpolationMode.BILINEAR, fill=fill)
    if crop is not None and rotate > 0:
        # Rotating the whole enlarged fundus image costs more than the step it feeds (0.3 s
        # against 0.02 s for a window): cut a window around the crop, turn it, keep its centre.
        # The crop's corner pixels, turned about the centre by any angle, must keep both
        # bilinear neighbours inside the window, and the window the crop's parity on each side,
        # so that its centre is the crop's exactly.
        reach = math.hypot(crop[0] - 1, crop[1] - 1) + 1
        window = [side + 2 * math.ceil((reach - side) / 2) for side in crop]
        steps += [v2.RandomCrop(window, pad_if_needed=True, fill=fill), turn, v2.CenterCrop(crop)]
    elif crop is not None:
        steps.append(v2.RandomCrop(crop, pad_if_needed=True, fill=fill))
    elif rotate > 0:
        steps.append(turn)
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if vflip:
        steps.append(v2.RandomVerticalFlip())
    if rot90:
        # After the crop: turning the crop costs a small fraction of turning the image.
        steps.append(RandomQuarterTurn())
    if jitter > 0:
        steps.append(v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter))
    return v2.Compose(steps) if steps else _identity


def _identity(image: tv_tensors.Image, mask: tv_tensors.Mask) -> tuple[Any, Any]:
    return image, mask


def eval_transform() -> JointTransform:
    """Evaluation transform: none at all, since FCNs are scored on whole images at full size."""
    return _identity


def collate_pad(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor]], ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (image, mask) pairs of different sizes, padding at the bottom and right.

    Images are padded with 0 and masks with ``ignore_index``; returns plain tensors,
    images N×C×H×W (uint8, or float32 if any image is) and masks int64 N×H×W (N×K×H×W for K
    label sets) at the largest height and width in the batch.
    For a ``DataLoader``: ``collate_fn=functools.partial(collate_pad, ignore_index=...)``.
    """
    height = max(image.shape[-2] for image, _ in batch)
    width = max(image.shape[-1] for image, _ in batch)
    channels = batch[0][0].shape[0]
    dtype = torch.uint8 if all(i.dtype == torch.uint8 for i, _ in batch) else torch.float32
    images = torch.zeros(len(batch), channels, height, width, dtype=dtype)
    heads = tuple(batch[0][1].shape[:-2])  # K for masks of K label sets
    masks = torch.full((len(batch), *heads, height, width), ignore_index, dtype=torch.int64)
    for i, (image, mask) in enumerate(batch):
        h, w = image.shape[-2:]
        images[i, :, :h, :w] = image
        masks[i, ..., :h, :w] = mask
    return images, masks
