"""GeoTIFF in and out (the ``geotiff`` extra): bands read exactly, rasters segmented window by
window as the in-memory image would be, masks written where the raster lies."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import fcnseg
from fcnseg.cli import main
from fcnseg.data import Raster, read_bands
from fcnseg.errors import DataError
from fcnseg.models import Normalization

rasterio = pytest.importorskip("rasterio", reason="the geotiff extra: pip install fcnseg[geotiff]")
from rasterio.transform import Affine  # noqa: E402

CRS = "EPSG:32633"
PALETTE = [[0, 0, 255], [0, 200, 0], [200, 0, 0]]
TRANSFORM = Affine(10, 0, 500000, 0, -10, 4600000)  # 10 m pixels, north up


def write_raster(path, bands: np.ndarray, crs=CRS) -> None:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=bands.shape[1],
        width=bands.shape[2],
        count=bands.shape[0],
        dtype=str(bands.dtype),
        crs=crs,
        transform=TRANSFORM,
    ) as dst:
        dst.write(bands)


@pytest.fixture()
def scene(tmp_path):
    bands = np.random.default_rng(0).integers(0, 3000, (4, 150, 230)).astype(np.uint16)
    bands[3, 30:110, 40:200] += 4000
    (tmp_path / "in").mkdir()
    write_raster(tmp_path / "in" / "scene.tif", bands)
    return tmp_path / "in" / "scene.tif", bands


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    model = fcnseg.fcn8s(num_classes=3, backbone="timm:test_resnet", in_channels=4)
    for name, p in model.named_parameters():
        if name.startswith("score"):
            torch.nn.init.normal_(p, std=0.05)
    model.normalization = Normalization((1500.0,) * 4, (900.0,) * 4)
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    fcnseg.save(model, path, classes=["water", "field", "town"], palette=PALETTE)
    return path


def test_bands_are_read_exactly(scene):
    path, bands = scene
    image = read_bands(path, 4)
    assert image.dtype == torch.float32 and torch.equal(image, torch.from_numpy(bands).float())
    with Raster(path, 4) as raster:
        assert raster.shape == (4, 150, 230)
        assert torch.equal(raster[:, 10:20, 200:230], image[:, 10:20, 200:230])


def test_a_raster_of_other_bands_is_one_line(scene):
    with pytest.raises(DataError, match="raster has 4 bands but the model takes 5"):
        Raster(scene[0], 5)


def test_predict_reads_windows_and_writes_a_georeferenced_mask(scene, model_file, tmp_path):
    path, bands = scene
    out = tmp_path / "out"
    assert main(["predict", str(model_file), str(path), "--out", str(out), "--tile", "96",
                 "--overlap", "32", "--precision", "fp32"]) == 0  # fmt: skip
    with rasterio.open(out / "scene.tif") as mask:
        assert mask.crs.to_string() == CRS and mask.transform == TRANSFORM
        assert mask.count == 1 and mask.dtypes == ("uint8",)
        assert json.loads(mask.tags(1)["classes"]) == ["water", "field", "town"]
        assert [mask.colormap(1)[i][:3] for i in range(3)] == [tuple(c) for c in PALETTE]
        written = mask.read(1)
    # Window by window, the same answer as the same tiles of the image in memory.
    predictor = fcnseg.Predictor(fcnseg.load(model_file), tile=96, overlap=32, precision="fp32")
    expected = predictor(bands.transpose(1, 2, 0))
    assert np.array_equal(written, expected.numpy())
    assert (out / "scene_overlay.png").is_file()


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_a_tiff_without_georeferencing_gives_a_png_mask(model_file, tmp_path):
    bands = np.random.default_rng(1).integers(0, 255, (4, 40, 50)).astype(np.uint8)
    with rasterio.open(
        tmp_path / "plain.tif", "w", driver="GTiff", height=40, width=50, count=4, dtype="uint8"
    ) as dst:
        dst.write(bands)
    out = tmp_path / "out"
    assert main(["predict", str(model_file), str(tmp_path / "plain.tif"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["plain.png", "plain_overlay.png"]
