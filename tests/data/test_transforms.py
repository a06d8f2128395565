"""Joint transforms keep image and mask aligned, pad with the ignore label, keep labels intact."""

import math

import pytest
import torch
from torchvision import tv_tensors

from fcnseg.data import collate_pad, eval_transform, train_transform

H, W = 24, 31
IGNORE = 10_000  # outside every pixel id below, so padding can't be mistaken for a pixel
STEP = 8  # image value per pixel of position: 8 · 30 < 256


def position_pair() -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """An image whose red/green say each pixel's own row/column, and a mask naming the pixel."""
    rows = torch.arange(H).view(H, 1).expand(H, W)
    cols = torch.arange(W).view(1, W).expand(H, W)
    image = torch.stack([rows * STEP, cols * STEP, torch.full((H, W), 255)]).to(torch.uint8)
    return tv_tensors.Image(image), tv_tensors.Mask(rows * W + cols)


def test_crop_and_flip_keep_image_and_mask_aligned_exactly():
    transform = train_transform(crop=(16, 20), scale=(1.0, 1.0), ignore_index=IGNORE)
    flipped = 0
    for seed in range(20):
        torch.manual_seed(seed)
        image, mask = transform(*position_pair())
        assert image.shape == (3, 16, 20) and mask.shape == (16, 20)
        assert torch.equal(image[0].long(), (mask // W) * STEP)
        assert torch.equal(image[1].long(), (mask % W) * STEP)
        flipped += int(mask[0, 0] % W > mask[0, -1] % W)
    assert 0 < flipped < 20  # both flip outcomes were exercised


def test_flips_and_quarter_turns_reach_all_eight_orientations_aligned():
    # Every output pixel still shows the pixel its mask names; the orientation is read off
    # where the source's first pixel and first row went. Both flips and quarter turns together
    # reach all eight symmetries of the square, and only those.
    transform = train_transform(
        crop=(16, 16), scale=(1.0, 1.0), vflip=True, rot90=True, ignore_index=IGNORE
    )
    seen = set()
    for seed in range(80):
        torch.manual_seed(seed)
        image, mask = transform(*position_pair())
        assert image.shape == (3, 16, 16) and mask.shape == (16, 16)
        assert torch.equal(image[0].long(), (mask // W) * STEP)
        assert torch.equal(image[1].long(), (mask % W) * STEP)
        rows, cols = mask // W, mask % W
        # Which way the source's rows and columns run along the output's first row and column.
        steps = (
            int(rows[0, 1] - rows[0, 0]),
            int(cols[0, 1] - cols[0, 0]),
            int(rows[1, 0] - rows[0, 0]),
            int(cols[1, 0] - cols[0, 0]),
        )
        seen.add(steps)
    assert len(seen) == 8


def test_rotation_keeps_image_and_mask_aligned_at_any_angle():
    # A window with the crop's diagonal is turned and its centre kept: no pixel of the crop is
    # padding, and each shows (bilinear, exact on the position ramps up to the uint8 step) the
    # position whose nearest source pixel the mask names, so within half a pixel of it. The
    # angle, read off the ramps along the middle row, stays within ±30° and takes both signs.
    transform = train_transform(
        crop=(12, 12), scale=(1.0, 1.0), hflip=False, rotate=30.0, ignore_index=IGNORE
    )
    angles = []
    for seed in range(30):
        torch.manual_seed(seed)
        image, mask = transform(*position_pair())
        assert image.shape == (3, 12, 12) and mask.shape == (12, 12)
        assert not (mask == IGNORE).any()
        for seen, true in ((image[0] / STEP, mask // W), (image[1] / STEP, mask % W)):
            assert (seen.double() - true).abs().max() <= 0.5 + 1 / STEP
        rows, cols = image[0, 6].double() / STEP, image[1, 6].double() / STEP
        angles.append(math.degrees(math.atan2(rows[-1] - rows[0], cols[-1] - cols[0])))
    assert max(abs(a) for a in angles) <= 30 + 1
    assert min(angles) < -15 and max(angles) > 15


def test_quarter_turns_need_a_square_crop():
    with pytest.raises(ValueError, match="square crop"):
        train_transform(crop=(16, 20), rot90=True, ignore_index=IGNORE)


def test_scaled_mask_labels_the_source_pixel_the_image_shows():
    # The image is resized bilinearly and the mask with centre-aligned nearest, so the position
    # the image shows must round to the source pixel whose label the mask carries: within half
    # a pixel (plus 1/16 for the uint8 encoding). At the source border the antialias filter is
    # cut short and leans inward, so there the bound is the neighbouring pixel, 1.
    transform = train_transform(crop=(20, 20), scale=(0.5, 2.0), hflip=True, ignore_index=IGNORE)
    for seed in range(30):
        torch.manual_seed(seed)
        image, mask = transform(*position_pair())
        labelled = mask != IGNORE
        for seen, true, size in (
            (image[0][labelled] / STEP, mask[labelled] // W, H),
            (image[1][labelled] / STEP, mask[labelled] % W, W),
        ):
            error = (seen.double() - true).abs()
            inner = (true > 0) & (true < size - 1)
            assert error[inner].max() <= 0.5 + 1 / 16
            assert error.max() < 1


def test_padding_uses_zero_and_ignore_index():
    image = tv_tensors.Image(torch.full((3, 5, 6), 200, dtype=torch.uint8))
    mask = tv_tensors.Mask(torch.ones(5, 6, dtype=torch.int64))
    transform = train_transform(crop=(9, 8), scale=(1.0, 1.0), hflip=False, ignore_index=7)
    out_image, out_mask = transform(image, mask)
    assert out_mask.shape == (9, 8) and out_mask.dtype == torch.int64
    assert int((out_mask == 1).sum()) == 30 and int((out_mask == 7).sum()) == 72 - 30
    assert torch.equal(out_image[0] == 200, out_mask == 1)
    assert int(out_image[:, out_mask == 7].max()) == 0


def test_masks_keep_integer_labels_from_the_original_set():
    g = torch.Generator().manual_seed(0)
    image = tv_tensors.Image(torch.randint(0, 256, (3, 19, 23), dtype=torch.uint8, generator=g))
    mask = tv_tensors.Mask(torch.randint(0, 5, (19, 23), generator=g))
    transform = train_transform(crop=(16, 16), jitter=0.4, ignore_index=255)
    for seed in range(10):
        torch.manual_seed(seed)
        out_image, out_mask = transform(image, mask)
        assert isinstance(out_mask, tv_tensors.Mask) and out_mask.dtype == torch.int64
        assert out_image.dtype == torch.uint8 and out_image.shape == (3, 16, 16)
        assert set(out_mask.unique().tolist()) <= {0, 1, 2, 3, 4, 255}


def test_no_augmentation_is_identity_and_eval_is_identity():
    image, mask = position_pair()
    for transform in (
        train_transform(crop=None, scale=(1.0, 1.0), hflip=False, ignore_index=IGNORE),
        eval_transform(),
    ):
        out_image, out_mask = transform(image, mask)
        assert torch.equal(out_image, image) and torch.equal(out_mask, mask)


def test_collate_pad_pads_bottom_right():
    a = (torch.full((3, 2, 3), 9, dtype=torch.uint8), torch.full((2, 3), 1, dtype=torch.int64))
    b = (torch.full((3, 4, 1), 5, dtype=torch.uint8), torch.full((4, 1), 2, dtype=torch.int64))
    images, masks = collate_pad([a, b], ignore_index=255)
    assert images.shape == (2, 3, 4, 3) and images.dtype == torch.uint8
    assert masks.shape == (2, 4, 3) and masks.dtype == torch.int64
    assert masks.tolist() == [
        [[1, 1, 1], [1, 1, 1], [255, 255, 255], [255, 255, 255]],
        [[2, 255, 255], [2, 255, 255], [2, 255, 255], [2, 255, 255]],
    ]
    assert images[0, :, :2, :].eq(9).all() and images[0, :, 2:, :].eq(0).all()
    assert images[1, :, :, :1].eq(5).all() and images[1, :, :, 1:].eq(0).all()
