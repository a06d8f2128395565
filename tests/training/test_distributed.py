"""Data-parallel training under torchrun: two CPU processes (gloo, loopback only) train, and
their validation scores exactly what one process scores on the same weights."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import fcnseg
from fcnseg.cli import main
from fcnseg.data import build_dataset, make_synthetic
from fcnseg.evaluation import METRICS, evaluate
from fcnseg.files.checkpoint import read_checkpoint as read_state

# torchrun itself: the module its command runs, with this interpreter.
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
# 8 good training images are 4 per process, 2 batches of 2 each; 3 good validation images split
# 2 + 1: an uneven split, where DistributedSampler would pad rank 1 with a repeat of image 0.
# One broken file in each split, each found by a different process, is left out by --skip-bad.
# Validation scores a moving average of the weights, which each process keeps.
ARGS = [
    "train",
    "--dataset",
    "synthetic",
    "--backbone",
    "timm:test_resnet",
    "--model",
    "fcn8s",
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
    "--seed",
    "5",
    "--skip-bad",
    "--ema",
    "0.5",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = make_synthetic(tmp_path_factory.mktemp("data"), n_train=9, n_val=4, sizes=(48, 56))
    (root / "train/images/0004.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")  # rank 0's
    (root / "val/images/0001.png").write_text("not an image")  # rank 1's share
    return root


@pytest.fixture(scope="module")
def two_process_run(data, tmp_path_factory) -> tuple[Path, str, str]:
    """A 2-process run of ``fcnseg train`` under torchrun: its directory, stdout and stderr."""
    run = tmp_path_factory.mktemp("ddp") / "run"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        # gloo on the loopback interface only: nothing leaves this machine.
        "GLOO_SOCKET_IFNAME": "lo",
        "MASTER_ADDR": "127.0.0.1",
    }
    done = subprocess.run(
        [
            *TORCHRUN,
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "fcnseg",
            *ARGS,
            "--root",
            str(data),
            "--out",
            str(run),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return run, done.stdout, done.stderr


@pytest.fixture(autouse=True)
def one_thread():
    # As each torchrun process runs: the same float sums, so the same argmax everywhere.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.random.fork_rng(devices=[]):
        yield
    torch.set_num_threads(threads)


def test_two_processes_validate_exactly_as_one(two_process_run, data, tmp_path):
    run, stdout, stderr = two_process_run
    # Each process checked its share; rank 0 lists what both found, once.
    assert stderr.count("skipping 2 bad samples:") == 1
    assert "train/images/0004.png: cannot read image" in stderr
    assert "val/images/0001.png: cannot read image" in stderr
    # Only rank 0 logs and writes.
    assert sum(line.startswith("epoch 1/1") for line in stdout.splitlines()) == 1
    assert sum(line.startswith("best mean IU") for line in stdout.splitlines()) == 1
    state = read_state(run / "last.safetensors")
    assert state.info["world"] == 2 and sorted(state.rng) == [0, 1]  # both processes' RNGs
    assert state.info["state"]["step"] == 2  # 4 images per process in batches of 2
    (record,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # What the two saved is the average, not the weights they stepped.
    saved = fcnseg.load(run / "best.safetensors").state_dict()
    assert any(not torch.equal(saved[k], v) for k, v in state.model.items())

    # One process scores the model the two validated and saved (best.safetensors).
    scores = tmp_path / "scores.json"
    assert (
        main(
            [
                "eval",
                str(run / "best.safetensors"),
                "--dataset",
                "synthetic",
                "--root",
                str(data),
                "--device",
                "cpu",
                "--json",
                str(scores),
                "--skip-bad",
            ]
        )
        == 0
    )
    single = json.loads(scores.read_text())
    assert single["images"] == 3
    assert {k: single[k] for k in METRICS} == {k: record[k] for k in METRICS}

    # The check has teeth: counting image 0 twice, as padding would, changes the scores.
    model = fcnseg.load(run / "best.safetensors")
    padded = build_dataset("synthetic", data, "val")
    good = [s for s in padded.samples if s[0].name != "0001.png"]
    padded.samples = [*good, good[0]]
    doubled = evaluate(model, padded, device="cpu")
    assert {k: doubled[k] for k in METRICS} != {k: single[k] for k in METRICS}


def test_two_process_run_resumes_in_one(two_process_run, data, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(two_process_run[0], run)
    assert main(["train", "--resume", "--out", str(run), "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "resuming 2-process training with 1: the data order is kept" in out
    state = read_state(run / "last.safetensors")
    # One process takes all 8 images of epoch 2 in batches of 2: 4 more steps.
    assert (state.info["state"]["epoch"], state.info["state"]["step"], state.info["world"]) == (
        2,
        6,
        1,
    )


def test_sync_bn_on_cpus_is_one_clear_error(data, tmp_path, monkeypatch, capsys):
    # PyTorch's SyncBatchNorm runs on CUDA only; on CPUs the run must say so before it starts,
    # not fail in the first forward pass. A process group of one stands in for the second
    # process here (the refusal comes before any collective), which keeps the test fast.
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    try:
        code = main([*ARGS, "--root", str(data), "--out", str(tmp_path / "run"), "--sync-bn"])
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "error: --sync-bn needs GPUs: PyTorch's SyncBatchNorm runs on CUDA only; drop the "
        "flag to train on CPUs"
    )
