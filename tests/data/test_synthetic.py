"""The synthetic demo set: deterministic, varied, valid, and readable as a dataset."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fcnseg.data import build_dataset, make_synthetic
from fcnseg.data.synthetic import CLASSES
from fcnseg.errors import DataError


def opened(path) -> Image.Image:
    """The decoded image at ``path``, its file closed."""
    with Image.open(path) as image:
        image.load()
        return image


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn"), n_train=12, n_val=4, seed=3)


def files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_layout_and_classes_json(root):
    names = [str(p) for p in files(root)]
    assert len(names) == 2 * (12 + 4) + 1
    assert "train/images/0011.png" in names and "val/masks/0003.png" in names
    assert opened(root / "val" / "masks" / "0000.png").mode == "P"  # viewable in colour
    spec = json.loads((root / "classes.json").read_text())
    assert spec == {
        "classes": ["background", "disc", "square", "triangle", "bar", "ring"],
        "palette": [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128], [128, 0, 128]],
        "ignore_index": 255,
    }


def test_same_seed_same_bytes_other_seed_other_images(root, tmp_path):
    again = make_synthetic(tmp_path / "again", n_train=12, n_val=4, seed=3)
    assert files(again) == files(root)
    for name in files(root):
        assert (again / name).read_bytes() == (root / name).read_bytes(), name
    other = make_synthetic(tmp_path / "other", n_train=1, n_val=0, seed=4)
    first = "train/images/0000.png"
    assert (other / first).read_bytes() != (root / first).read_bytes()


def test_val_does_not_depend_on_train_count(root, tmp_path):
    fewer = make_synthetic(tmp_path / "fewer", n_train=2, n_val=4, seed=3)
    for name in ("val/images/0002.png", "val/masks/0003.png"):
        assert (fewer / name).read_bytes() == (root / name).read_bytes()


def test_sizes_vary_within_bounds(root):
    sizes = {opened(p).size for p in (root / "train" / "images").iterdir()}
    assert len(sizes) >= 10
    assert all(96 <= w <= 160 and 96 <= h <= 160 for w, h in sizes)
    assert any(w != h for w, h in sizes)


def test_masks_are_valid_with_objects_and_an_ignore_band(root):
    ds = build_dataset("synthetic", root, "train")
    assert ds.classes == CLASSES and ds.ignore_index == 255
    seen = torch.zeros(256, dtype=torch.int64)
    for i in range(len(ds)):
        image, mask = ds[i]
        assert image.shape[-2:] == mask.shape
        seen += torch.bincount(mask.flatten(), minlength=256)
    present = set(torch.nonzero(seen).flatten().tolist())
    assert present == set(range(len(CLASSES))) | {255}
    # The ignore band is thin: a few percent of the pixels, not whole objects.
    assert 0.005 < seen[255] / seen.sum() < 0.06


def test_ignore_band_is_thin_and_sits_on_object_boundaries(root):
    ds = build_dataset("synthetic", root, "train")
    masks = [ds.load_mask(i) for i in range(len(ds))]
    straddling = void = 0
    for mask in masks:
        # The labels found within 2 pixels of each pixel (max-pooled one-hot).
        one_hot = torch.nn.functional.one_hot(mask.clamp(max=len(CLASSES)), len(CLASSES) + 1)
        one_hot = one_hot[..., : len(CLASSES)].permute(2, 0, 1).float()[None]
        nearby = torch.nn.functional.max_pool2d(one_hot, 5, stride=1, padding=2)[0].sum(0)
        # Two pixels wide: no void pixel is more than 2 pixels from a labelled one ...
        assert (nearby[mask == 255] >= 1).all()
        # ... and it straddles an outline, so it sees the label on either side, except where
        # the outlines of overlapping objects run together.
        straddling += int((nearby[mask == 255] >= 2).sum())
        void += int((mask == 255).sum())
    assert straddling > 0.95 * void
    assert sum(int((m == 255).any()) for m in masks) >= len(masks) // 2


def test_synthetic_reader_generates_an_empty_root(tmp_path):
    root = tmp_path / "fresh"
    ds = build_dataset("synthetic", root, "val", n_train=1, n_val=2, sizes=(41, 50), seed=1)
    assert (root / "classes.json").is_file() and len(ds) == 2
    image, mask = ds[0]
    assert image.dtype == torch.uint8 and mask.dtype == torch.int64
    assert 40 <= mask.shape[0] <= 50 and 40 <= mask.shape[1] <= 50
    # Its content is make_synthetic's, pixel for pixel.
    made = make_synthetic(tmp_path / "made", n_train=1, n_val=2, sizes=(41, 50), seed=1)
    assert np.array_equal(np.asarray(opened(made / "val/masks/0000.png")), mask.numpy())


def test_synthetic_reader_refuses_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="notes.txt"):
        build_dataset("synthetic", tmp_path, "train")


def test_sizes_too_small_for_the_shapes_are_one_line(tmp_path):
    from fcnseg.errors import ConfigError

    with pytest.raises(ConfigError, match="at least 41 px"):
        make_synthetic(tmp_path / "s", n_train=1, n_val=1, sizes=(40, 48))
    with pytest.raises(ConfigError, match="n_val must be a whole number"):
        make_synthetic(tmp_path / "s", n_train=1, n_val=-1)
    for low, high in ((41, 41), (41, 60)):  # the smallest side always fits every shape
        make_synthetic(tmp_path / f"ok{low}{high}", n_train=25, n_val=0, sizes=(low, high))
