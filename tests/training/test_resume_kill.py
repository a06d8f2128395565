"""Never lose work: a training process killed with SIGKILL resumes to the very weights of an
uninterrupted run, and a diverging run stops with one line, its last checkpoint kept."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fcnseg.cli import main
from fcnseg.data import make_synthetic
from fcnseg.files.checkpoint import read_checkpoint as read_state

# A tiny backbone on tiny data: 6 training images in batches of 2 are 3 optimiser steps per
# epoch, 6 in all, each followed by a checkpoint (--checkpoint-every 1).
ARGS = [
    "--dataset",
    "synthetic",
    "--backbone",
    "timm:test_resnet",
    "--model",
    "fcn8s",
    "--epochs",
    "2",
    "--batch-size",
    "2",
    "--crop",
    "32",
    "32",
    "--checkpoint-every",
    "1",
    "--deterministic",
    "--device",
    "cpu",
    "--seed",
    "3",
]
STEPS = 6


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("data"), n_train=6, n_val=3, sizes=(48, 56))


@pytest.fixture(autouse=True)
def one_thread_and_clean_globals():
    """Train in-process as the subprocess does (one thread: the same float sums), and leave
    the generators and the deterministic-algorithms switch as they were."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    python_state, numpy_state = random.getstate(), np.random.get_state()
    torch.set_num_threads(1)
    with torch.random.fork_rng(devices=[]):
        yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    random.setstate(python_state)
    np.random.set_state(numpy_state)


def _train_in_process(*argv: str) -> int:
    return main(["train", *argv])


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_weights(data, tmp_path, capsys):
    killed = tmp_path / "killed"
    checkpoint = killed / "last.safetensors"
    # The real thing: `python -m fcnseg train` in its own process, loading data in a worker
    # process (the uninterrupted and resumed runs load in-process: the augmentation of each
    # sample depends on (seed, epoch, index) only, not on who loads it).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fcnseg",
            "train",
            *ARGS,
            "--root",
            str(data),
            "--workers",
            "1",
            "--out",
            str(killed),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)  # no chance to clean up or finish a write
        output = process.communicate(timeout=30)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL, f"the run ended before the kill:\n{output}"
    stopped_at = read_state(checkpoint).info["state"]["step"]
    assert 1 <= stopped_at < STEPS

    # Resume with nothing but the run directory: the settings come from the checkpoint.
    assert _train_in_process("--resume", "--out", str(killed), "--workers", "0") == 0
    assert f"at epoch {stopped_at // 3 + 1}, step {stopped_at}" in capsys.readouterr().out
    assert not list(killed.glob(".*"))  # temporary files of a write cut short are cleared
    umask = os.umask(0)
    os.umask(umask)
    for name in ("last.safetensors", "best.safetensors"):  # atomic, yet with a new file's mode
        assert (killed / name).stat().st_mode & 0o777 == 0o666 & ~umask

    reference = tmp_path / "uninterrupted"
    assert (
        _train_in_process(*ARGS, "--root", str(data), "--workers", "0", "--out", str(reference))
        == 0
    )

    resumed, whole = read_state(checkpoint), read_state(reference / "last.safetensors")
    assert resumed.info["state"]["step"] == whole.info["state"]["step"] == STEPS
    assert resumed.info["state"]["epoch"] == whole.info["state"]["epoch"] == 2
    # Bit for bit: every weight, batch-norm statistic and optimiser moment.
    assert resumed.model.keys() == whole.model.keys()
    for name, tensor in whole.model.items():
        assert torch.equal(resumed.model[name], tensor), name
    for index, state in whole.optimizer["state"].items():
        for key, value in state.items():
            assert torch.equal(
                torch.as_tensor(resumed.optimizer["state"][index][key]), torch.as_tensor(value)
            ), (index, key)
    # The same validation scores after each epoch, and the same best model.
    timeless = [{k: v for k, v in h.items() if k != "time"} for h in whole.info["state"]["history"]]
    assert [
        {k: v for k, v in h.items() if k != "time"} for h in resumed.info["state"]["history"]
    ] == timeless
    assert resumed.info["state"]["best"] == whole.info["state"]["best"]


def test_diverging_loss_stops_with_one_line_and_keeps_the_last_checkpoint(data, tmp_path, capsys):
    run = tmp_path / "run"
    # An absurd learning rate: the first step throws the weights to ~1e30, the second to inf.
    code = _train_in_process(
        *ARGS,
        "--root",
        str(data),
        "--workers",
        "0",
        "--out",
        str(run),
        "--optimizer",
        "sgd",
        "--lr",
        "1e30",
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    match = re.fullmatch(
        r"error: step (\d+): (the loss is (nan|inf)|the weights are no longer finite .*); "
        r"training stopped and the last checkpoint, (\S+) \(step (\d+)\), is kept; lower --lr.*",
        line,
    )
    assert match, line
    assert match[4] == str(run / "last.safetensors")
    kept = read_state(run / "last.safetensors")
    assert kept.info["state"]["step"] == int(match[5]) < int(match[1])
    assert all(t.isfinite().all() for t in kept.model.values() if t.is_floating_point())
