"""Models by address (hf://, https://) from the standard caches, and fcnseg push's files, all
without a network: the Hugging Face cache is filled in the hub's own layout, URLs are served
from this machine, and push runs as --dry-run."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import fcnseg
from fcnseg.cli import main
from fcnseg.errors import CheckpointError
from fcnseg.files.hub import locate
from fcnseg.models import build_fcn

BACKBONE = "timm:test_resnet"
CLASSES = ["road", "car", "sky"]


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = build_fcn("fcn16s", num_classes=3, backbone=BACKBONE)
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    path = tmp_path / "run" / "best.safetensors"
    path.parent.mkdir()
    scores = {"pixel_acc": 0.9, "mean_acc": 0.8, "mean_iu": 0.7, "per_class_iu": [0.6, 0.7, 0.8]}
    palette = [[128, 64, 128], [64, 0, 128], [128, 128, 128]]
    fcnseg.save(model, path, classes=CLASSES, palette=palette, scores=scores, epoch=3)
    return path


def fill_hub_cache(cache: Path, repo: str, files: dict[str, Path]) -> None:
    """The Hugging Face cache's layout: models--OWNER--REPO/{refs/main, snapshots/REV/FILE}."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)
    for name, source in files.items():
        target = folder / "snapshots" / revision / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_hf_address_reads_the_hub_cache_offline(model_file, hub_cache) -> None:
    fill_hub_cache(hub_cache, "me/fcn-roads", {"model.safetensors": model_file})
    loaded = fcnseg.load("hf://me/fcn-roads")
    assert loaded.meta.classes == tuple(CLASSES)
    original = fcnseg.load(model_file)
    for name, tensor in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    fill_hub_cache(hub_cache, "me/other", {"weights/v2.safetensors": model_file})
    assert locate("hf://me/other/weights/v2.safetensors").read_bytes() == model_file.read_bytes()


def test_hf_address_not_cached_offline_is_one_line(hub_cache) -> None:
    with pytest.raises(CheckpointError, match="not in the Hugging Face cache and HF_HUB_OFFLINE"):
        fcnseg.load("hf://me/absent")
    with pytest.raises(CheckpointError, match=r"expected hf://OWNER/REPO"):
        fcnseg.load("hf://just-a-name")


def test_predict_takes_an_hf_address(model_file, tmp_path) -> None:
    cache = tmp_path / "hf-cache"
    fill_hub_cache(cache, "me/fcn-roads", {"model.safetensors": model_file})
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(tmp_path / "a.png")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "fcnseg", "predict", "hf://me/fcn-roads", str(tmp_path / "a.png")]
    done = subprocess.run(
        [*cmd, "--out", str(tmp_path / "masks")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "masks" / "a.png").size == (30, 20)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served(model_file, tmp_path, monkeypatch):
    """An address on this machine serving the model file; torch hub's cache under tmp_path."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "torch-hub"))
    handler = functools.partial(_Quiet, directory=str(model_file.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/{model_file.name}"
    server.shutdown()


def test_url_downloads_once_checks_its_hash_and_reads_the_cache(
    served, model_file, monkeypatch
) -> None:
    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()
    path = locate(f"{served}#sha256={digest}")
    assert path.is_relative_to(torch.hub.get_dir()) and path.read_bytes() == model_file.read_bytes()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # from the cache now
    assert fcnseg.load(served).meta.classes == tuple(CLASSES)
    with pytest.raises(CheckpointError, match="sha256 differs"):
        locate(f"{served}#sha256={'0' * 64}")
    assert not path.exists()  # a file that fails its hash does not stay in the cache
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE is set"):
        locate(served)
    with pytest.raises(CheckpointError, match="#sha256= and 64 hex digits"):
        locate(f"{served}#md5=abc")


def test_push_dry_run_writes_what_would_be_uploaded(model_file, tmp_path, capsys) -> None:
    (model_file.parent / "config.yaml").write_text(
        yaml.safe_dump({"dataset": "folder", "root": "/home/me/data", "epochs": 3})
    )
    out = tmp_path / "upload"
    code = main(
        ["push", str(model_file), "me/fcn-roads", "--license", "mit", "--dry-run", str(out)]
    )
    assert code == 0
    assert "would upload to me/fcn-roads" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "training.yaml",
    ]
    assert (out / "model.safetensors").read_bytes() == model_file.read_bytes()
    config = json.loads((out / "config.json").read_text())
    assert config["library_name"] == "fcnseg" and config["classes"] == CLASSES
    assert config["variant"] == "fcn16s" and config["backbone"] == BACKBONE
    assert "scores" not in config
    card = huggingface_hub.ModelCard.load(out / "README.md")
    assert card.data.license == "mit" and card.data.library_name == "fcnseg"
    assert card.data.pipeline_tag == "image-segmentation" and card.data.datasets == ["folder"]
    assert "| 1 | car | #400080 | 70.0 |" in card.text
    assert "| 90.0 | 80.0 | 70.0 |" in card.text
    assert 'fcnseg.load("hf://me/fcn-roads")' in card.text
    settings = yaml.safe_load((out / "training.yaml").read_text())
    assert settings == {"dataset": "folder", "epochs": 3}  # no paths of the trainer's machine


def test_push_mistakes_are_one_line(model_file, tmp_path, capsys) -> None:
    not_a_model = tmp_path / "x.safetensors"
    not_a_model.write_bytes(b"nonsense")
    code = main(["push", str(not_a_model), "me/r", "--license", "mit", "--dry-run", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a safetensors model file" in err[0]
    assert main(["push", str(model_file), "not a repo", "--license", "mit"]) == 2
    assert "not a Hub repository name" in capsys.readouterr().err
