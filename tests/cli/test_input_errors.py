"""Inputs whose meaning is wrong or ambiguous: refused with one line before any work, or handled
by a documented rule; outputs that never clobber."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import fcnseg
from fcnseg.cli import main
from fcnseg.data import build_dataset, make_synthetic
from fcnseg.errors import CheckpointError, ConfigError, DataError
from fcnseg.files.checkpoint import read_checkpoint
from fcnseg.training import TrainConfig, train

BACKBONE = "timm:test_resnet"


def _error(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("syn") / "d", n_train=4, n_val=2, sizes=(41, 48))


def _config(data: Path, out: Path, **extra) -> TrainConfig:
    return TrainConfig(dataset="synthetic", root=str(data), backbone=BACKBONE, model="fcn32s",
                       epochs=1, batch_size=2, crop=(32, 32), workers=0, out=str(out),
                       **extra)  # fmt: skip


# ---------------------------------------------------------------- run directories


def test_a_second_run_into_one_directory_is_refused_unless_asked(data, tmp_path) -> None:
    train(_config(data, tmp_path / "run"))
    with pytest.raises(ConfigError, match=r"holds another run .*--resume.*--overwrite"):
        train(_config(data, tmp_path / "run"))
    (tmp_path / "run" / "stray.txt").write_text("the user's own file")
    train(_config(data, tmp_path / "run", overwrite=True))
    assert (tmp_path / "run" / "stray.txt").exists()  # only the run's own files are replaced
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text())["epoch"] == 1


def test_a_run_directory_that_is_a_file_is_one_line(data, tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("x")
    argv = ["train", "--dataset", "synthetic", "--root", str(data), "--backbone", BACKBONE,
            "--epochs", "1", "--out", str(tmp_path / "file")]  # fmt: skip
    assert main(argv) == 2
    assert "a file, not a folder" in _error(capsys)


def test_ctrl_c_in_the_first_epoch_leaves_a_checkpoint_to_resume(data, tmp_path) -> None:
    out = tmp_path / "run"
    # Ctrl-C (SIGINT to the process) right after the second optimiser step of epoch 1.
    script = (
        "import os, signal, sys\n"
        "import fcnseg.training.loop as loop\n"
        "real, calls = loop.update, []\n"
        "def update(run):\n"
        "    real(run); calls.append(1)\n"
        "    if len(calls) == 2: os.kill(os.getpid(), signal.SIGINT)\n"
        "loop.update = update\n"
        "from fcnseg.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = ["train", "--dataset", "synthetic", "--root", str(data), "--backbone", BACKBONE,
            "--model", "fcn32s", "--epochs", "3", "--batch-size", "1", "--crop", "64", "64",
            "--freeze-backbone", "--workers", "0", "--out", str(out)]  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 130, done.stderr
    assert "continue with `fcnseg train --resume" in done.stderr
    state = read_checkpoint(out / "last.safetensors").info["state"]
    assert (state["epoch"], state["step"], state["step_in_epoch"]) == (0, 2, 2)
    assert main([*argv, "--resume"]) == 0  # and it continues
    assert read_checkpoint(out / "last.safetensors").info["state"]["epoch"] == 3


# ---------------------------------------------------------------- predict's outputs


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    fcnseg.save(fcnseg.fcn32s(num_classes=3, backbone=BACKBONE), path)
    return path


def test_predict_refuses_to_write_over_its_inputs(model_file, tmp_path, capsys) -> None:
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "a.png")
    before = (tmp_path / "a.png").read_bytes()
    assert main(["predict", str(model_file), str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "holds input images" in _error(capsys)
    assert (tmp_path / "a.png").read_bytes() == before


def test_inputs_of_one_name_get_their_suffix(model_file, tmp_path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(source / "a.png")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(source / "a.jpg")
    out = tmp_path / "out"
    assert main(["predict", str(model_file), str(source), "--out", str(out)]) == 0
    assert {p.name for p in out.glob("a_*.png")} >= {"a_png.png", "a_jpg.png"}


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (["eval", "missing.safetensors", "--dataset", "synthetic", "--root", "nowhere"], "--json"),
        (["eval", "missing.safetensors", "--dataset", "synthetic", "--root", "nowhere"], "--plot"),
        (["export", "missing.safetensors"], "--onnx"),
        (["predict", "missing.safetensors", "IMAGE"], "--out"),
        (["data", "check", "nowhere", "--dataset", "synthetic"], "--json"),
        (["import-caffe", "missing.caffemodel"], "--out"),
        (["demo", "--preset", "tiny"], "--out"),
        (["push", "missing.safetensors", "me/fcn", "--license", "mit"], "--dry-run"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_before_the_work(
    tmp_path, monkeypatch, capsys, command, flag
) -> None:
    """The output is checked first: the model, data and images named here do not exist, so
    any work started (a scoring, an export, an engine's calibration: minutes) would fail on
    them instead; and nothing is created."""
    monkeypatch.chdir(tmp_path)  # where the relative names above would be
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "out.safetensors"
    argv = [str(tmp_path / "a.png") if a == "IMAGE" else a for a in command]
    assert main([*argv, flag, str(out)]) == 2
    assert _error(capsys) == (
        f"error: {flag} {out}: cannot write: a part of the path is a file, not a folder; "
        "choose another path"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "file"]


# ---------------------------------------------------------------- label spaces


def _folder(root: Path, masks: dict[str, np.ndarray], classes: list[str] | None = None) -> Path:
    for split, labels in masks.items():
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        Image.fromarray(np.zeros((*labels.shape, 3), np.uint8)).save(
            root / split / "images" / "a.png"
        )
        Image.fromarray(labels).save(root / split / "masks" / "a.png")
    if classes:
        (root / "classes.json").write_text(json.dumps({"classes": classes}))
    return root


def test_binary_masks_of_0_and_255_are_refused_before_training(tmp_path) -> None:
    labels = np.zeros((40, 40), np.uint8)
    labels[10:30, 10:30] = 255
    root = _folder(tmp_path / "d", {"train": labels, "val": labels}, ["bg", "fg"])
    config = TrainConfig(dataset="folder", root=str(root), backbone=BACKBONE, epochs=1,
                         batch_size=1, workers=0, out=str(tmp_path / "run"))  # fmt: skip
    with pytest.raises(DataError, match=r"only 0 .* and 255 .*--label-map 255:1"):
        train(config)
    assert not (tmp_path / "run" / "last.safetensors").exists()


def test_a_validation_split_lacking_a_class_agrees_with_training(tmp_path) -> None:
    train_labels = np.array([[0, 1], [2, 2]], np.uint8)
    root = _folder(tmp_path / "d", {"train": train_labels, "val": np.zeros((2, 2), np.uint8)})
    assert build_dataset("folder", root, "val").num_classes == 3  # inferred over every split


# ---------------------------------------------------------------- files and images


def test_metadata_claiming_millions_of_classes_is_refused_before_building(tmp_path) -> None:
    model = fcnseg.fcn32s(num_classes=2, backbone=BACKBONE)
    meta = {**model.meta.to_json(), "num_classes": 10_000}
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"fcnseg": json.dumps(meta)})  # fmt: skip
    with pytest.raises(CheckpointError, match=r"says 10000 classes but the file holds "
                                              r"score_fr.weight for 2"):  # fmt: skip
        fcnseg.load(path)
    meta["num_classes"] = 10**7
    save_file({"x": torch.zeros(1)}, str(path), metadata={"fcnseg": json.dumps(meta)})
    with pytest.raises(CheckpointError, match=r"num_classes 10000000 is not a whole number"):
        fcnseg.load(path)
    for magnify in (0.5, "big", float("nan")):
        meta.update(num_classes=2, magnify=magnify)
        save_file({"x": torch.zeros(1)}, str(path), metadata={"fcnseg": json.dumps(meta)})
        with pytest.raises(CheckpointError, match=r"magnify .* is not a number in 1–4"):
            fcnseg.load(path)


def test_save_with_bad_metadata_changes_nothing(tmp_path) -> None:
    model = fcnseg.fcn32s(num_classes=2, backbone=BACKBONE)
    before = model.meta
    with pytest.raises(CheckpointError, match="classes must be 2 names"):
        fcnseg.save(model, tmp_path / "m.safetensors", classes={"a", "b"})
    assert model.meta is before and not (tmp_path / "m.safetensors").exists()


def test_float_images_are_refused_not_guessed(tmp_path) -> None:
    path = tmp_path / "f.tif"
    Image.fromarray(np.full((8, 8), 0.5, np.float32), mode="F").save(path)
    from fcnseg.data.decode import open_image

    with pytest.raises(DataError, match="32-bit float pixels"):
        open_image(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_image_is_called_unreadable(tmp_path) -> None:
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    path.chmod(0)
    from fcnseg.data.decode import open_image

    with pytest.raises(DataError, match="permission denied"):
        open_image(path)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((3, 20, 20), np.uint8), "channels-first"),
        (np.zeros((20, 20, 3), np.float32), "not float32"),
        (np.zeros((0, 20, 3), np.uint8), "empty"),
        (np.zeros((20, 20, 2), np.uint8), "C 1, 3 or 4"),
        (torch.zeros(0, 3, 8, 8, dtype=torch.uint8), "N ≥ 1"),
        (torch.rand(1, 3, 8, 8), "not torch.float32"),
    ],
)
def test_ambiguous_arrays_are_refused(array, message) -> None:
    predictor = fcnseg.Predictor(fcnseg.fcn32s(num_classes=2, backbone=BACKBONE), precision="fp32")
    with pytest.raises(ConfigError, match=message):
        predictor(array)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--device", "nope"], "not a device"),
        (["--batch-size", "0"], "must be at least 1"),
        (["--overlap", "-3"], "must be at least 0"),
        (["--tile", "40"], "leaves no room beside an overlap"),
        (["--magnify", "0.5"], "--magnify: must lie in 1–4, not 0.5"),
        (["--magnify", "big"], "--magnify: expected a number in 1–4, not 'big'"),
    ],
)
def test_predict_flags_are_checked(model_file, tmp_path, capsys, flags, message) -> None:
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "a.png")
    argv = ["predict", str(model_file), str(tmp_path / "a.png"), "--out", str(tmp_path / "o")]
    try:
        code = main([*argv, *flags])
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err
