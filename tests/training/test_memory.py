"""Training keeps the memory it frees for its next step (``fcnseg.device.freed_memory_kept``),
and hands it back afterwards. Observed through the resident memory of a fresh process: one
that earlier tests left with free heap would serve a block from it whatever the settings. That
the kept memory is reused, and what that is worth, is measured by benchmarks/training_ab.py."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc" or not Path("/proc/self/statm").exists(),
    reason="glibc on Linux only",
)

PRELUDE = """
from pathlib import Path
import torch
from fcnseg.device import freed_memory_kept

SIZE = 64 << 20  # above glibc's largest mmap threshold (32 MiB): mmap'd and unmapped by default

def resident():
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096

def allocate_and_free():
    block = torch.ones(SIZE // 4)  # touched: every page resident
    del block
"""


def in_fresh_process(checks: str) -> None:
    code = PRELUDE + textwrap.dedent(checks)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-1500:]


def test_freed_blocks_stay_within_and_go_back_after() -> None:
    in_fresh_process(
        """
        before = resident()
        allocate_and_free()
        assert resident() - before < SIZE / 2, "by default, handed back at once"
        with freed_memory_kept():
            allocate_and_free()
            kept = resident()
            assert kept - before > SIZE * 0.9, "kept within"
        assert resident() < kept - SIZE * 0.9, "returned on the way out"
        allocate_and_free()
        assert resident() < kept - SIZE * 0.9, "glibc's defaults back"
        """
    )


def test_an_inner_block_leaves_the_outer_one_keeping() -> None:
    # Validation (evaluation's own block) runs inside training's.
    in_fresh_process(
        """
        before = resident()
        with freed_memory_kept():
            with freed_memory_kept():
                pass
            allocate_and_free()
            assert resident() - before > SIZE * 0.9, "still kept after the inner block"
        assert resident() - before < SIZE / 2, "returned by the outer block"
        """
    )
