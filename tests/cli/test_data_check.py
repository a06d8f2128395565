"""``fcnseg data check``: the report a user reads before training, and its findings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from fcnseg.cli import main
from fcnseg.data import make_synthetic


def _tree(root: Path, masks: dict[str, list[np.ndarray]], same_image: bool = False) -> Path:
    rng = np.random.default_rng(0)
    shared = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for split, labels in masks.items():
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for i, mask in enumerate(labels):
            image = shared if same_image else rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / split / "images" / f"{i}.png")
            Image.fromarray(mask).save(root / split / "masks" / f"{i}.png")
    (root / "classes.json").write_text(json.dumps({"classes": ["bg", "fg"]}))
    return root


def _binary() -> np.ndarray:
    mask = np.zeros((16, 16), np.uint8)
    mask[4:9, 4:12] = 255
    return mask


def test_a_clean_dataset_is_ready(tmp_path, capsys) -> None:
    root = make_synthetic(tmp_path / "syn", n_train=3, n_val=2, sizes=(41, 48))
    assert main(["data", "check", str(root), "--dataset", "synthetic"]) == 0
    out = capsys.readouterr().out
    assert "0 finding(s); ready to train" in out and "pairs" in out


def test_binary_masks_are_found_with_the_fix_and_the_map_clears_them(tmp_path, capsys) -> None:
    root = _tree(tmp_path / "d", {"train": [_binary(), _binary()], "val": [_binary()]})
    report = tmp_path / "report.json"
    assert main(["data", "check", str(root), "--json", str(report)]) == 1
    out = capsys.readouterr().out
    assert '"map": {"255": 1}' in out and "never occur in the training masks" in out
    data = json.loads(report.read_text())
    assert data["splits"]["train"]["pairs"] == 2
    assert data["splits"]["train"]["stored_values"] == {"0": 2 * (256 - 40), "255": 2 * 40}
    assert main(["data", "check", str(root), "--label-map", "255:1"]) == 0
    assert json.loads(report.read_text())["splits"]["val"]["ignored_pixels"] == 40


def test_duplicates_and_size_mismatches_are_findings_not_errors(tmp_path, capsys) -> None:
    small = np.zeros((8, 8), np.uint8)
    masks = {"train": [np.eye(16, dtype=np.uint8)], "val": [np.eye(16, dtype=np.uint8), small]}
    root = _tree(tmp_path / "d", masks, same_image=True)
    assert main(["data", "check", str(root)]) == 1
    out = capsys.readouterr().out
    assert "the same image is in train and val" in out
    assert "mask is 8×8 but its image is 16×16" in out
