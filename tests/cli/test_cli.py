"""The command line end to end on tiny data: train, eval, errors for people, lazy commands."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

import fcnseg
from fcnseg.cli import COMMANDS, main
from fcnseg.data import make_synthetic
from fcnseg.models import build_fcn

TRAIN = [
    "train",
    "--dataset",
    "synthetic",
    "--backbone",
    "timm:test_resnet",
    "--model",
    "fcn16s",
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
]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("data"), n_train=4, n_val=2, sizes=(41, 48))


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert main([*TRAIN, "--root", str(data), "--out", str(out)]) == 0
    return out


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ")
    return line


def test_train_writes_the_run(run, capsys) -> None:
    for name in (
        "best.safetensors",
        "last.safetensors",
        "metrics.jsonl",
        "curves.png",
        "config.yaml",
    ):
        assert (run / name).is_file(), name
    assert fcnseg.load(run / "best.safetensors").meta.variant == "fcn16s"


def test_eval_prints_the_table_and_writes_json_and_plot(run, data, tmp_path, capsys) -> None:
    scores, plot = tmp_path / "scores.json", tmp_path / "confusion.png"
    assert (
        main(
            [
                "eval",
                str(run / "best.safetensors"),
                "--dataset",
                "synthetic",
                "--root",
                str(data),
                "--split",
                "val",
                "--json",
                str(scores),
                "--plot",
                str(plot),
                "--boundary",
                "2",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    saved = json.loads(scores.read_text())
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    # The run's own validation and `fcnseg eval` score the same weights identically.
    for key in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu"):
        assert saved[key] == pytest.approx(record[key], abs=1e-12)
    assert [c["class"] for c in saved["per_class"]] == [
        "background",
        "disc",
        "square",
        "triangle",
        "bar",
        "ring",
    ]
    assert saved["images"] == 2 and saved["boundary"]["width"] == 2
    assert "mean IU" in out and "triangle" in out and f"{100 * saved['mean_iu']:.2f}" in out
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert "magnify" not in saved and "enlarged" not in out


def test_eval_says_a_models_working_scale(run, data, tmp_path, capsys) -> None:
    model = fcnseg.load(run / "best.safetensors")
    path = tmp_path / "big.safetensors"
    fcnseg.save(model, path, magnify=1.5)
    scores = tmp_path / "scores.json"
    argv = ["eval", str(path), "--dataset", "synthetic", "--root", str(data), "--device", "cpu"]
    assert main([*argv, "--json", str(scores)]) == 0
    assert "enlarged 1.5× (the model's working scale)" in capsys.readouterr().out
    at_recorded = json.loads(scores.read_text())
    assert at_recorded["magnify"] == 1.5
    # --magnify scores at another scale: as a model file recording that scale does.
    other = tmp_path / "other.safetensors"
    fcnseg.save(model, other, magnify=1.25)
    assert main([*argv, "--magnify", "1.25", "--json", str(scores)]) == 0
    assert "enlarged 1.25× (--magnify)" in capsys.readouterr().out
    overridden = json.loads(scores.read_text())
    assert main([*argv[:1], str(other), *argv[2:], "--json", str(scores)]) == 0
    recorded = json.loads(scores.read_text())
    assert overridden["magnify"] == 1.25 and overridden["confusion"] == recorded["confusion"]


def test_eval_accepts_the_training_checkpoint(run, data, capsys) -> None:
    assert (
        main(
            [
                "eval",
                str(run / "last.safetensors"),
                "--dataset",
                "synthetic",
                "--root",
                str(data),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "pixel acc." in capsys.readouterr().out


def test_config_file_with_flags_overriding(data, tmp_path) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        yaml.safe_dump(
            {
                "dataset": "synthetic",
                "root": str(data),
                "backbone": "timm:test_resnet",
                "model": "fcn32s",
                "epochs": 1,
                "batch_size": 4,
                "crop": [32, 32],
                "workers": 0,
                "recipe": "paper",
                "reduction": "mean",
            }
        )
    )
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                str(settings),
                "--batch-size",
                "2",
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["batch_size"] == 2 and resolved["crop"] == [32, 32]  # flag, then file
    assert (resolved["optimizer"], resolved["momentum"], resolved["lr"]) == ("sgd", 0.99, 1e-4)
    assert json.loads((out / "metrics.jsonl").read_text())["step"] == 2


def test_missing_checkpoint_is_one_line(data, tmp_path, capsys) -> None:
    code = main(
        ["eval", str(tmp_path / "nope.safetensors"), "--dataset", "synthetic", "--root", str(data)]
    )
    assert code == 2
    assert "nope.safetensors" in _one_error_line(capsys)


def test_eval_refuses_another_class_count(data, tmp_path, capsys) -> None:
    path = tmp_path / "four.safetensors"
    fcnseg.save(build_fcn("fcn32s", num_classes=4, backbone="timm:test_resnet"), path)
    code = main(
        ["eval", str(path), "--dataset", "synthetic", "--root", str(data), "--device", "cpu"]
    )
    assert code == 2
    assert "model has 4 classes but synthetic" in _one_error_line(capsys)
    assert not (tmp_path / "scores.json").exists()


def test_fine_tuning_across_class_sets_logs_what_was_taken(data, tmp_path, capsys) -> None:
    path = tmp_path / "four.safetensors"
    other = build_fcn("fcn32s", num_classes=4, backbone="timm:test_resnet")
    fcnseg.save(other, path, classes=["a", "b", "c", "d"])
    out = tmp_path / "run"
    code = main([*TRAIN, "--root", str(data), "--out", str(out), "--init-from", str(path)])
    assert code == 0
    log = capsys.readouterr().out
    assert f"tensors from {path}" in log
    assert "not taken: score_fr.weight (other classes: started as §4.2)" in log
    assert main([*TRAIN, "--root", str(data), "--out", str(out), "--class-map", "auto"]) == 2
    assert "give --init-from CKPT" in _one_error_line(capsys)


def test_bad_settings_are_one_line(data, tmp_path, capsys) -> None:
    settings = tmp_path / "bad.yaml"
    settings.write_text("dataset: synthetic\nbatchsize: 3\n")
    assert main(["train", "--config", str(settings)]) == 2
    assert "unknown setting(s) batchsize" in _one_error_line(capsys)
    assert main(["train", "--root", str(data)]) == 2
    assert "no dataset given" in _one_error_line(capsys)
    assert main(["train", "--dataset", "nosuch", "--root", str(data)]) == 2
    assert "unknown dataset 'nosuch'" in _one_error_line(capsys)
    # A file name or nothing: a truth value given as text is said, not looked for on disk.
    assert main([*TRAIN, "--root", str(data), "--pretrained-backbone", "false"]) == 2
    assert _one_error_line(capsys) == (
        "error: --pretrained-backbone (pretrained_backbone): 'false' would be read as a file "
        "name; on the command line give the flag alone for true and leave it out for false "
        "(true or false unquoted in YAML)"
    )


def test_bad_arguments_get_argparse_usage(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--epochs", "many"])
    assert exit_.value.code == 2
    assert "usage: fcnseg train" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "x.safetensors", "--unknown-flag"])


def test_every_command_is_dispatched_to_its_module(monkeypatch) -> None:
    seen = {}
    for name, (module_name, _) in COMMANDS.items():
        module = types.ModuleType(f"fcnseg.cli.{module_name}")
        module.add_arguments = lambda parser: parser.add_argument("image")
        module.run = lambda args, name=name: seen.setdefault(name, args.image) and 0
        monkeypatch.setitem(sys.modules, f"fcnseg.cli.{module_name}", module)
        assert main([name, f"{name}.png"]) == 0
    assert seen == {name: f"{name}.png" for name in COMMANDS}


def test_help_and_version_do_not_import_torch() -> None:
    code = (
        "import sys; from fcnseg.cli import COMMANDS, main\n"
        "for argv in (['--help'], ['--version']):\n"
        "    try: main(argv)\n"
        "    except SystemExit as e: assert e.code == 0\n"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"fcnseg {fcnseg.__version__}" in done.stdout and "predict" in done.stdout


def test_python_dash_m(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fcnseg", "eval", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "usage: fcnseg eval" in done.stdout
