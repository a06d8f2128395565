"""``fcnseg predict`` end to end: folders, modes, palette PNGs, overlays, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import fcnseg
from fcnseg.cli import main
from fcnseg.data.datasets import voc_palette as default_palette

PALETTE = [[255, 0, 0], [0, 255, 0], [0, 0, 255]]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = fcnseg.fcn8s(num_classes=3, backbone="efficientnet_lite0")
    for name, p in model.named_parameters():
        if name.startswith("score"):
            torch.nn.init.normal_(p, std=0.05)
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    fcnseg.save(model, path, classes=["a", "b", "c"], palette=PALETTE)
    return path


@pytest.fixture()
def folder(tmp_path):
    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(images / "a.png")
    Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(images / "b.jpg")
    Image.fromarray(rng.integers(0, 256, (33, 21), dtype=np.uint8)).save(images / "grey.png")
    Image.fromarray(rng.integers(0, 256, (30, 45, 4), dtype=np.uint8), "RGBA").save(
        images / "rgba.png"
    )
    return images


def _run(*argv) -> int:
    return main(["predict", *map(str, argv)])


def test_writes_palette_masks_and_overlays(checkpoint, folder, tmp_path):
    out = tmp_path / "out"
    assert _run(checkpoint, folder, "--out", out, "--precision", "fp32") == 0
    sizes = {"a": (52, 40), "b": (52, 40), "grey": (21, 33), "rgba": (45, 30)}
    for name, size in sizes.items():
        mask = Image.open(out / f"{name}.png")
        assert mask.mode == "P" and mask.size == size
        assert mask.getpalette()[:9] == sum(PALETTE, [])
        assert np.array(mask).max() < 3
        overlay = Image.open(out / f"{name}_overlay.png")
        assert overlay.mode == "RGB" and overlay.size == size
    # the mask is the model's own answer
    model = fcnseg.load(checkpoint).eval()
    image = torch.from_numpy(np.array(Image.open(folder / "a.png"))).permute(2, 0, 1)[None]
    with torch.no_grad():
        scores = model(model.normalization(image))[0]
    mask = torch.from_numpy(np.array(Image.open(out / "a.png"))).long()
    # The same function by other float32 arithmetic (tests/inference: _same_classes): a class
    # may differ only where two scores tie within rounding.
    chosen = scores.gather(0, mask[None])[0]
    assert (scores.max(0).values - chosen <= 1e-3 * scores.abs().amax()).all()


def test_probabilities_and_globs(checkpoint, folder, tmp_path):
    out = tmp_path / "out"
    assert _run(checkpoint, folder / "*.png", "--out", out, "--probabilities") == 0
    probs = np.load(out / "a_prob.npy")
    assert probs.dtype == np.float16 and probs.shape == (3, 40, 52)
    assert np.allclose(probs.astype(np.float32).sum(0), 1, atol=1e-2)
    assert not (out / "b.png").exists()  # b.jpg is not matched by *.png


def test_bad_image_is_one_line_and_exit_2(checkpoint, folder, tmp_path, capsys):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert _run(checkpoint, folder, "--out", tmp_path / "out", "--precision", "fp32") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "broken.png" in err and "Traceback" not in err


def test_skip_bad_lists_and_goes_on(checkpoint, folder, tmp_path, capsys):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    assert _run(checkpoint, folder, "--out", out, "--precision", "fp32", "--skip-bad") == 0
    assert "broken.png" in capsys.readouterr().err
    assert {p.name for p in out.glob("*.png") if "_overlay" not in p.name} == {
        "a.png",
        "b.png",
        "grey.png",
        "rgba.png",
    }
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_missing_input_is_an_error(checkpoint, tmp_path, capsys):
    assert _run(checkpoint, tmp_path / "nothing.png", "--out", tmp_path / "out") == 2
    assert "nothing.png" in capsys.readouterr().err


def test_default_palette_is_distinct():
    colours = default_palette(256)
    assert colours[0] == (0, 0, 0) and colours[1] == (128, 0, 0)
    assert len(set(colours)) == 256


def test_tile_flag_takes_pixels_auto_or_off(checkpoint, folder, tmp_path, capsys):
    from fcnseg.cli.predict import tile_size

    assert tile_size("auto") == "auto" and tile_size("off") is None and tile_size("640") == 640
    out = tmp_path / "out"
    assert _run(checkpoint, folder / "a.png", "--out", out, "--tile", "off") == 0
    assert (out / "a.png").exists()
    with pytest.raises(SystemExit):
        _run(checkpoint, folder / "a.png", "--out", out, "--tile", "0")
    assert "expected a tile size in pixels, auto or off" in capsys.readouterr().err


def test_a_two_headed_model_writes_a_mask_per_head(folder, tmp_path):
    torch.manual_seed(0)
    model = fcnseg.fcn16s(num_classes={"sem": 3, "geo": 2}, backbone="timm:test_resnet")
    for name, p in model.named_parameters():
        if name.startswith("score"):
            torch.nn.init.normal_(p, std=0.1)
    path = tmp_path / "two.safetensors"
    fcnseg.save(
        model, path, classes=["a", "b", "c", "up", "down"], palette=[*PALETTE, [9, 9, 9], [7, 7, 7]]
    )
    out = tmp_path / "out"
    args = ["predict", str(path), str(folder / "a.png"), "--out", str(out), "--precision", "fp32"]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "a_geo.png", "a_geo_overlay.png", "a_sem.png", "a_sem_overlay.png"
    ]  # fmt: skip
    expected = fcnseg.Predictor(fcnseg.load(path), precision="fp32")(Image.open(folder / "a.png"))
    with Image.open(out / "a_geo.png") as geo:
        assert np.array_equal(np.array(geo), expected[1].numpy())
        assert geo.getpalette()[:6] == [9, 9, 9, 7, 7, 7]
    with Image.open(out / "a_sem.png") as sem:
        assert np.array_equal(np.array(sem), expected[0].numpy())


@pytest.mark.parametrize(
    ("kind", "top", "dtype"), [("png", 65535, np.uint16), ("png8", 255, np.uint8)]
)
def test_two_class_probabilities_as_a_grey_png(folder, tmp_path, kind, top, dtype):
    torch.manual_seed(0)
    model = fcnseg.fcn8s(num_classes=2, backbone="timm:test_resnet")
    for name, p in model.named_parameters():
        if name.startswith("score") and name.endswith("weight"):
            torch.nn.init.normal_(p, std=1.0)
    path = tmp_path / "binary.safetensors"
    fcnseg.save(model, path)
    out = tmp_path / "out"
    args = ["predict", str(path), str(folder / "a.png"), "--out", str(out)]
    assert main([*args, "--probabilities", kind, "--precision", "fp32"]) == 0
    predictor = fcnseg.Predictor(fcnseg.load(path), precision="fp32")
    expected = predictor.probabilities(Image.open(folder / "a.png"))[1].numpy()
    with Image.open(out / "a_prob.png") as written:
        values = np.array(written)
    assert values.dtype == dtype and np.abs(values / top - expected).max() <= 0.5 / top + 1e-6
    with Image.open(out / "a.png") as mask:
        assert np.array_equal(np.array(mask), (expected > 0.5).astype(np.uint8))


def test_probability_png_needs_two_classes(checkpoint, folder, tmp_path, capsys):
    args = ["predict", str(checkpoint), str(folder), "--out", str(tmp_path / "o")]
    assert main([*args, "--probabilities", "png"]) == 2
    assert "two-class model; this one has 3 classes" in capsys.readouterr().err
