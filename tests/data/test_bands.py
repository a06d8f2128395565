"""Images beyond RGB: grey, RGB-D and multi-band rasters read with exactly their values, the
paper's NYUDv2 RGB-D early-fusion input, and the statistics new channels are normalised by."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from fcnseg.data import build_dataset, channel_stats, collate_pad, read_bands
from fcnseg.errors import DataError


def test_npy_bands_keep_their_values_and_wide_types_become_float(tmp_path):
    bands = np.random.default_rng(0).integers(0, 60000, (5, 7, 4)).astype(np.uint16)
    np.save(tmp_path / "x.npy", bands)
    image = read_bands(tmp_path / "x.npy", 4)
    assert image.dtype == torch.float32 and image.shape == (4, 5, 7)
    assert np.array_equal(image.permute(1, 2, 0).numpy(), bands.astype(np.float32))
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.save(tmp_path / "g.npy", grey)
    assert read_bands(tmp_path / "g.npy", 1).dtype == torch.uint8
    assert read_bands(tmp_path / "g.npy", 1)[0].numpy().tolist() == grey.tolist()


def test_png_modes_give_their_bands(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, (3, 4, 4), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    assert read_bands(tmp_path / "a.png", 4).permute(1, 2, 0).numpy().tolist() == rgba.tolist()
    # The RGB rules are unchanged for three channels: alpha dropped.
    assert read_bands(tmp_path / "a.png", 3).permute(1, 2, 0).numpy().tolist() == (
        rgba[..., :3].tolist()
    )
    depth = np.array([[1, 500], [40000, 65535]], dtype=np.uint16)
    Image.fromarray(depth).save(tmp_path / "d.png")
    assert read_bands(tmp_path / "d.png", 1)[0].tolist() == depth.astype(float).tolist()


@pytest.mark.parametrize(
    ("array", "channels", "words"),
    [
        (np.zeros((4, 4, 3), np.uint8), 4, "has 3 channels but the model takes 4"),
        (np.zeros((4, 4, 4), np.float32) + np.nan, 4, "NaN"),
        (np.zeros((4, 4, 2, 2), np.uint8), 2, "H×W or H×W×C"),
    ],
)
def test_arrays_that_do_not_fit_are_one_line(tmp_path, array, channels, words):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(DataError, match=words) as error:
        read_bands(tmp_path / "x.npy", channels)
    assert "\n" not in str(error.value)


def test_a_pickled_npy_is_refused_not_run(tmp_path):
    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="pickled"):
        read_bands(tmp_path / "x.npy", 1)


def test_folder_of_multiband_arrays_batches_as_float(tmp_path):
    rng = np.random.default_rng(2)
    for name, h in (("a", 3), ("b", 5)):
        (tmp_path / "train" / "images").mkdir(parents=True, exist_ok=True)
        (tmp_path / "train" / "masks").mkdir(parents=True, exist_ok=True)
        np.save(tmp_path / "train" / "images" / f"{name}.npy", rng.random((h, 4, 6)) * 1e4)
        Image.fromarray(np.ones((h, 4), np.uint8)).save(
            tmp_path / "train" / "masks" / f"{name}.png"
        )
    dataset = build_dataset("folder", tmp_path, "train", in_channels=6, num_classes=2)
    images, masks = collate_pad([dataset[0], dataset[1]], ignore_index=255)
    assert images.shape == (2, 6, 5, 4) and images.dtype == torch.float32
    assert masks[0, 3:].eq(255).all() and images[0, :, 3:].eq(0).all()


def nyud_rgbd_tree(root: Path) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    rgb = np.random.default_rng(3).integers(0, 256, (2, 3, 3), dtype=np.uint8)
    depth = np.array([[0, 1000, 2553], [400, 65535, 7]], dtype=np.uint16)  # mm; 0 = no reading
    hha = np.random.default_rng(4).integers(0, 256, (2, 3, 3), dtype=np.uint8)
    (root / "data" / "images").mkdir(parents=True)
    (root / "data" / "depth").mkdir()
    (root / "data" / "hha").mkdir()
    (root / "segmentation").mkdir()
    (root / "train.txt").write_text("0001\n")
    Image.fromarray(rgb).save(root / "data" / "images" / "img_0001.png")
    Image.fromarray(depth).save(root / "data" / "depth" / "img_0001.png")
    Image.fromarray(hha).save(root / "data" / "hha" / "img_0001.png")
    labels = np.array([[0, 1, 2], [3, 4, 40]], np.uint8)
    scipy.io.savemat(root / "segmentation" / "img_0001.mat", {"segmentation": labels})
    return root, rgb, depth, hha


def test_nyud_rgbd_is_colour_and_log_depth_in_four_channels(tmp_path):
    root, rgb, depth, hha = nyud_rgbd_tree(tmp_path)
    fused = build_dataset("nyud", root, "train", modality="rgbd")
    assert fused.in_channels == 4
    image, mask = fused[0]
    assert image.shape == (4, 2, 3) and mask.tolist() == [[255, 0, 1], [2, 3, 39]]
    assert image[:3].permute(1, 2, 0).numpy().tolist() == rgb.astype(float).tolist()
    expected = np.log(np.maximum(depth.astype(np.float64), 1))
    assert np.allclose(image[3].numpy(), expected, rtol=1e-6)
    coded = build_dataset("nyud", root, "train", modality="hha")[0][0]
    assert coded.permute(1, 2, 0).numpy().tolist() == hha.tolist()


def test_channel_stats_are_the_pooled_mean_and_deviation():
    rng = np.random.default_rng(5)
    images = [torch.from_numpy(rng.normal(7, 2, (4, h, 5)).astype(np.float32)) for h in (3, 8)]
    mean, std = channel_stats(images, range(2, 4))
    pooled = np.concatenate([im[2:].flatten(1).double().numpy() for im in images], axis=1)
    assert np.allclose(mean, pooled.mean(1), rtol=1e-12)
    assert np.allclose(std, pooled.std(1), rtol=1e-9)
    constant = [torch.full((1, 2, 2), 3.0)]
    assert channel_stats(constant, range(0, 1)) == ((3.0,), (1.0,))  # not divided by zero
