"""Bad input gets a clear answer: through the command line, each broken file (made here, for
real) gives one line naming the file and what is wrong, exit status 2 and no traceback; odd but
valid images are accepted; ``--skip-bad`` skips and lists the broken ones instead."""

from __future__ import annotations

import io
import json
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import fcnseg
from fcnseg.cli import main

CLASSES = ["sky", "road", "car"]
H, W = 40, 48


# --------------------------------------------------------------- a small dataset on disk


def _pixels(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _labels(seed: int, h: int = H, w: int = W) -> np.ndarray:
    labels = np.random.default_rng(seed).integers(0, 3, (h, w)).astype(np.uint8)
    labels[:, :2] = 255  # an ignored band, as in VOC
    return labels


def _sample(root: Path, split: str, name: str, seed: int, *, h: int = H, w: int = W) -> None:
    Image.fromarray(_pixels(seed, h, w)).save(root / split / "images" / f"{name}.png")
    Image.fromarray(_labels(seed, h, w)).save(root / split / "masks" / f"{name}.png")


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """``folder`` layout: 4 training and 2 validation samples, 3 classes, ignore label 255."""
    root = tmp_path / "data"
    for split, count in (("train", 4), ("val", 2)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for i in range(count):
            _sample(root, split, f"s{i}", seed=10 * (split == "val") + i)
    (root / "classes.json").write_text(json.dumps({"classes": CLASSES}))
    return root


def _model_file(path: Path, num_classes: int = 3, backbone: str = "timm:test_resnet") -> Path:
    torch.manual_seed(0)
    model = fcnseg.fcn32s(num_classes=num_classes, backbone=backbone)
    fcnseg.save(model, path, classes=CLASSES[:num_classes])
    return path


def _mislabelled_model_file(path: Path, models: dict[str, Path]) -> Path:
    """test_efficientnet's weights under test_resnet's description: a file renamed, merged or
    written by another tool; the model it describes cannot take these weights."""
    with safe_open(str(models["model"]), framework="pt") as fh:
        metadata = fh.metadata()
    save_file(load_file(str(models["other_backbone"])), str(path), metadata=metadata)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    models = {
        "model": _model_file(folder / "model.safetensors"),
        "two_classes": _model_file(folder / "two_classes.safetensors", num_classes=2),
        "other_backbone": _model_file(
            folder / "other_backbone.safetensors", backbone="timm:test_efficientnet"
        ),
    }
    models["mislabelled"] = _mislabelled_model_file(folder / "mislabelled.safetensors", models)
    return models


# --------------------------------------------------------------- how each file is broken


def truncated_png(root: Path) -> Path:
    path = root / "train/images/s1.png"
    path.write_bytes(path.read_bytes()[:200])
    return path


def truncated_jpeg(root: Path) -> Path:
    (root / "val/images/s1.png").unlink()
    path = root / "val/images/s1.jpg"
    buffer = io.BytesIO()
    Image.fromarray(_pixels(11)).save(buffer, format="JPEG", quality=90)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


def text_named_png(root: Path) -> Path:
    path = root / "val/images/s0.png"
    path.write_text("not an image, just text with an image's name\n")
    return path


def image_without_mask(root: Path) -> Path:
    (root / "train/masks/s2.png").unlink()
    return root / "train/images"


def mask_without_image(root: Path) -> Path:
    (root / "val/images/s1.png").unlink()
    return root / "val/masks"


def mask_of_another_size(root: Path) -> Path:
    path = root / "train/masks/s3.png"
    Image.fromarray(_labels(3, H, W + 1)).save(path)
    return path


def label_outside_classes(root: Path) -> Path:
    path = root / "val/masks/s1.png"
    labels = _labels(11)
    labels[5, 7] = 7  # neither a class (0–2) nor the ignore label (255)
    Image.fromarray(labels).save(path)
    return path


def over_pixel_limit(split: str) -> Callable[[Path], Path]:
    def make(root: Path) -> Path:
        _sample(root, split, "huge", seed=99, h=50, w=60)  # 3000 pixels, over the 2000 allowed
        return root / split / "images" / "huge.png"  # each image is read before its mask

    return make


def empty_dataset(root: Path) -> Path:
    for path in (root / "train").glob("*/*"):
        path.unlink()
    return root / "train/images"


class _RunsCode:
    """Unpickling this touches a file: the harmless stand-in for a malicious weight file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def pickle_that_runs_code(root: Path) -> Path:
    path = root.parent / "weights.pth"
    with path.open("wb") as fh:
        pickle.dump({"conv1.weight": _RunsCode(root.parent / "pwned")}, fh)
    return path


def odd_image_modes(root: Path) -> None:
    """Grey, RGBA, palette and 16-bit images: all read as RGB, none an error."""
    images = root / "val/images"
    for path in images.iterdir():
        path.unlink()
    (root / "val/masks/s0.png").unlink()
    (root / "val/masks/s1.png").unlink()
    rgb = _pixels(5)
    grey = Image.fromarray(rgb[..., 0])
    wide = Image.fromarray(rgb[..., 1].astype(np.uint16) * 257)  # I;16
    assert wide.mode == "I;16"
    modes = {
        "grey": grey,
        "rgba": Image.fromarray(rgb, "RGB").convert("RGBA"),
        "palette": Image.fromarray(rgb, "RGB").convert("P"),
        "wide": wide,
    }
    for i, (name, image) in enumerate(modes.items()):
        image.save(images / f"{name}.png")
        Image.fromarray(_labels(i)).save(root / "val/masks" / f"{name}.png")
    (root / "notes.txt").write_text("a stray file beside the dataset")
    (root / "val/images/README.txt").write_text("not an image suffix: not a sample")


def exif_rotated_jpeg(root: Path) -> None:
    """A camera JPEG stored sideways, 40 wide and 48 high, with EXIF orientation 6 (turn 90°
    clockwise to view); its mask is drawn upright, 48 wide and 40 high. Only a reader that
    applies the rotation pairs them (else: mask of another size)."""
    (root / "val/images/s0.png").unlink()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_pixels(3, h=W, w=H)).save(root / "val/images/s0.jpg", exif=exif)
    Image.fromarray(_labels(3)).save(root / "val/masks/s0.png")


# --------------------------------------------------------------- the commands


def _train(root: Path, tmp: Path, models: dict[str, Path], *extra: str) -> list[str]:
    return [
        "train",
        "--dataset",
        "folder",
        "--root",
        str(root),
        "--backbone",
        "timm:test_resnet",
        "--model",
        "fcn32s",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--crop",
        "32",
        "32",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--out",
        str(tmp / "run"),
        *extra,
    ]


def _eval(root: Path, tmp: Path, models: dict[str, Path], *extra: str) -> list[str]:
    return [
        "eval",
        str(models["model"]),
        "--dataset",
        "folder",
        "--root",
        str(root),
        "--split",
        "val",
        "--device",
        "cpu",
        *extra,
    ]


def _predict(root: Path, tmp: Path, models: dict[str, Path], *extra: str) -> list[str]:
    return [
        "predict",
        str(models["model"]),
        str(root / "val/images"),
        "--out",
        str(tmp / "out"),
        "--device",
        "cpu",
        "--precision",
        "fp32",
        *extra,
    ]


def _with(command, *extra):
    return lambda root, tmp, models: command(root, tmp, models, *extra)


def _eval_with_model(name: str):
    return lambda root, tmp, models: [
        "eval",
        str(models[name]),
        "--dataset",
        "folder",
        "--root",
        str(root),
        "--split",
        "val",
        "--device",
        "cpu",
    ]


# (command, what breaks (a function of the dataset root returning the file it broke, or the
# name of a model file in `models`), what the message says after naming the file)
CASES = [
    pytest.param(
        _train,
        truncated_png,
        r"cannot read image \(truncated or not an image file\); re-export it or "
        r"remove it",
        id="truncated-png",
    ),
    pytest.param(
        _with(_train, "--workers", "1"),
        truncated_png,
        r"cannot read image \(truncated or not an image file\)",
        id="truncated-png-read-in-a-worker-process",
    ),
    pytest.param(_eval, truncated_jpeg, r"cannot read image \(truncated", id="truncated-jpeg"),
    pytest.param(
        _eval,
        text_named_png,
        r"cannot read image \(truncated or not an image file\)",
        id="text-file-named-png",
    ),
    pytest.param(
        _train,
        image_without_mask,
        r"1 image\(s\) without a mask in \S+/train/masks \(s2\.png\); add the masks or "
        r"remove the images",
        id="image-without-mask",
    ),
    pytest.param(
        _eval,
        mask_without_image,
        r"1 mask\(s\) without an image in \S+/val/images \(s1\.png\)",
        id="mask-without-image",
    ),
    pytest.param(
        _train,
        mask_of_another_size,
        r"mask is 49×40 but image is 48×40; masks must match their image pixel for "
        r"pixel",
        id="mask-of-another-size",
    ),
    pytest.param(
        _eval,
        label_outside_classes,
        r"mask has label 7 but the dataset has 3 classes \(0–2\) and ignore label 255",
        id="label-neither-class-nor-ignore",
    ),
    pytest.param(
        _with(_train, "--max-pixels", "2000"),
        over_pixel_limit("train"),
        r"image has 60×50 = 3,000 pixels, over the limit of 2,000",
        id="over-pixel-limit-train",
    ),
    pytest.param(
        _with(_eval, "--max-pixels", "2000"),
        over_pixel_limit("val"),
        r"image has 60×50 = 3,000 pixels, over the limit of 2,000",
        id="over-pixel-limit-eval",
    ),
    pytest.param(
        _with(_predict, "--max-pixels", "2000"),
        over_pixel_limit("val"),
        r"image has 60×50 = 3,000 pixels, over the limit of 2,000",
        id="over-pixel-limit-predict",
    ),
    pytest.param(_train, empty_dataset, r"no images found", id="empty-dataset-directory"),
    pytest.param(
        lambda root, tmp, models: _train(
            root, tmp, models, "--pretrained-backbone", str(root.parent / "weights.pth")
        ),
        pickle_that_runs_code,
        r"refused: this pickle would run code when loaded \(.*\); use a \.safetensors "
        r"file",
        id="pretrained-backbone-pickle-that-runs-code",
    ),
    pytest.param(
        _eval_with_model("two_classes"),
        "two_classes",
        r"model has 2 classes but folder at \S+ has 3; evaluate on the dataset the "
        r"model was trained for",
        id="eval-checkpoint-for-other-classes",
    ),
    pytest.param(
        _eval_with_model("mislabelled"),
        "mislabelled",
        r"weights do not fit the model its metadata describes \(Missing key",
        id="eval-checkpoint-whose-weights-are-another-backbones",
    ),
    pytest.param(
        lambda root, tmp, models: _train(
            root, tmp, models, "--init-from", str(models["two_classes"]), "--class-map", "x=y"
        ),
        "two_classes",
        r"--class-map",
        id="init-from-checkpoint-with-a-class-map-that-does-not-fit",
    ),
    pytest.param(
        lambda root, tmp, models: _train(
            root, tmp, models, "--init-from", str(models["other_backbone"])
        ),
        "other_backbone",
        r"made for backbone timm:test_efficientnet but this model has timm:test_resnet",
        id="init-from-checkpoint-for-other-backbone",
    ),
]


@pytest.mark.parametrize(("command", "breaks", "says"), CASES)
def test_bad_input_is_one_line_naming_the_file(
    command, breaks, says, root, tmp_path, models, capsys
):
    named = models[breaks] if isinstance(breaks, str) else breaks(root)
    code = main(command(root, tmp_path, models))
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    assert errors[0].startswith(f"error: {named}: "), errors[0]
    assert re.search(says, errors[0]), errors[0]
    assert not (root.parent / "pwned").exists()  # no weight file ran code


@pytest.mark.parametrize(
    "prepare",
    [odd_image_modes, exif_rotated_jpeg],
    ids=["grey-rgba-palette-16-bit", "exif-rotated-jpeg"],
)
def test_odd_but_valid_images_are_accepted(prepare, root, tmp_path, models, capsys):
    prepare(root)
    images = len(list((root / "val/masks").iterdir()))
    assert main(_eval(root, tmp_path, models)) == 0
    captured = capsys.readouterr()
    assert "error" not in captured.err
    assert f"on folder val ({images} images)" in captured.out


def _break_five(root: Path) -> list[Path]:
    """Five different faults, four among the training samples, one among the validation's."""
    bad = [truncated_png(root), mask_of_another_size(root)]
    _sample(root, "train", "text", seed=7)
    (root / "train/images/text.png").write_text("text")
    bad.append(root / "train/images/text.png")
    _sample(root, "train", "stray", seed=8)
    labels = _labels(8)
    labels[0, 0] = 9
    Image.fromarray(labels).save(root / "train/masks/stray.png")
    bad.append(root / "train/masks/stray.png")
    bad.append(over_pixel_limit("val")(root))
    return bad


def test_train_skip_bad_lists_them_and_trains_on_the_rest(root, tmp_path, models, capsys):
    bad = _break_five(root)
    assert main(_train(root, tmp_path, models, "--skip-bad", "--max-pixels", "2000")) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "skipping 5 bad samples:"
    listed = sorted(err[1:6])
    assert all(line.startswith("  ") for line in listed)
    assert sorted(line.split(": ")[0].strip() for line in listed) == sorted(map(str, bad))
    assert err[-1] == "skipped 5 bad samples (listed at the start)"
    history = [
        json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    ]
    # The good ones remain: 2 training samples (s0, s2) make one step of 2.
    assert history[0]["step"] == 1


def test_eval_skip_bad_scores_the_rest(root, tmp_path, models, capsys):
    bad = [text_named_png(root), label_outside_classes(root)]
    _sample(root, "val", "good", seed=21)
    assert main(_eval(root, tmp_path, models, "--skip-bad")) == 0
    captured = capsys.readouterr()
    assert "on folder val (1 images)" in captured.out
    assert captured.err.splitlines() == [
        "skipped 2 bad samples:",
        *(
            f"  {p}: {m}"
            for p, m in zip(
                bad,
                [
                    "cannot read image (truncated or not an image file); re-export it or remove it",
                    "mask has label 7 but the dataset has 3 "
                    "classes (0–2) and ignore label 255; fix "
                    "the mask or the class list",
                ],
                strict=True,
            )
        ),
    ]
