"""Label maps: the three documented cases, errors for malformed maps, and the folder reader
taking one from classes.json or the flag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnseg.data import build_dataset
from fcnseg.data.labelmap import LabelMap
from fcnseg.errors import ConfigError, DataError
from fcnseg.training import TrainConfig, train


@pytest.mark.parametrize(
    ("spec", "stored", "expected"),
    [
        ({"255": 1}, [0, 255], [0, 1]),  # binary masks saved as 0/255
        ("255:1", [0, 255], [0, 1]),
        ({"0": "ignore", "*": "-1"}, [0, 1, 5], [255, 0, 4]),  # ADE20K: 0 unlabelled
        ("0:ignore,*:-1", [0, 1, 5], [255, 0, 4]),
        ({"7": 0, "8": 1, "*": "ignore"}, [7, 8, 26, 255], [0, 1, 255, 255]),  # Cityscapes
    ],
)
def test_documented_maps(spec, stored, expected) -> None:
    mapping = LabelMap.parse(spec, source="test")
    labels = np.array(stored, dtype=np.int64).reshape(1, -1)
    assert mapping.apply(labels, ignore_index=255).ravel().tolist() == expected


@pytest.mark.parametrize("spec", ["255", "a:1", {"x": 1}, {"1": "cat"}, {"*": "up"}, {}, [1]])
def test_malformed_maps_are_one_line(spec) -> None:
    with pytest.raises(DataError, match="label map|map"):
        LabelMap.parse(spec, source="classes.json")


def _binary_tree(root: Path, classes_json: dict | None) -> Path:
    labels = np.zeros((48, 48), np.uint8)
    labels[10:30, 12:40] = 255
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in ("a", "b"):
            (root / split / "images").mkdir(parents=True, exist_ok=True)
            (root / split / "masks").mkdir(parents=True, exist_ok=True)
            image = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / split / "images" / f"{name}.png")
            Image.fromarray(labels).save(root / split / "masks" / f"{name}.png")
    if classes_json is not None:
        (root / "classes.json").write_text(json.dumps(classes_json))
    return root


def test_classes_json_map_turns_binary_masks_into_two_classes(tmp_path) -> None:
    root = _binary_tree(tmp_path / "d", {"classes": ["bg", "vessel"], "map": {"255": 1}})
    mask = build_dataset("folder", root, "train")[0][1]
    assert sorted(mask.unique().tolist()) == [0, 1]


def test_the_flag_overrides_and_binary_masks_train(tmp_path) -> None:
    root = _binary_tree(tmp_path / "d", {"classes": ["bg", "fg"]})
    config = dict(
        dataset="folder",
        root=str(root),
        backbone="timm:test_resnet",
        epochs=1,
        batch_size=2,
        crop=(32, 32),
        workers=0,
    )
    with pytest.raises(DataError, match=r"--label-map 255:1"):
        train(TrainConfig(**config, out=str(tmp_path / "refused")))
    result = train(TrainConfig(**config, label_map="255:1", out=str(tmp_path / "run")))
    assert result["steps"] == 1


def test_inferred_classes_follow_the_map(tmp_path) -> None:
    root = _binary_tree(tmp_path / "d", None)
    assert build_dataset("folder", root, "val", label_map="255:1").num_classes == 2


def test_a_reader_without_the_option_says_so(tmp_path) -> None:
    with pytest.raises(ConfigError, match="--label-map is not an option of the camvid reader"):
        build_dataset("camvid", tmp_path, "train", label_map="255:1")


def test_masks_paired_by_a_pattern(tmp_path) -> None:
    root = tmp_path / "d"
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / split / "images/Image_01L.jpg")
        for observer, value in (("1stHO", 1), ("2ndHO", 0)):
            mask = np.full((8, 8), value, np.uint8)
            Image.fromarray(mask).save(root / split / "masks" / f"Image_01L_{observer}.png")
    dataset = build_dataset("folder", root, "train", mask_pattern="{stem}_1stHO.png")
    assert dataset.samples[0][1].name == "Image_01L_1stHO.png"
    assert dataset[0][1].unique().tolist() == [1]
    with pytest.raises(DataError, match=r"1 mask\(s\) named by '\{stem\}_3rdHO.png' missing"):
        build_dataset("folder", root, "train", mask_pattern="{stem}_3rdHO.png")
    (root / "classes.json").write_text(
        json.dumps({"classes": ["bg", "vessel"], "mask_pattern": "{stem}_2ndHO.png"})
    )
    assert build_dataset("folder", root, "val")[0][1].unique().tolist() == [0]
