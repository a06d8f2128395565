"""Training keeps the memory it frees for its next step (``fcnseg.device.freed_memory_kept``),
and hands it back afterwards. Observed through the process's resident memory; that the kept
memory is reused, and what that is worth, is measured by benchmarks/speed.py."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
import torch

from fcnseg.device import freed_memory_kept

MIB = 1 << 20
SIZE = 64 * MIB  # above glibc's largest mmap threshold (32 MiB): mmap'd and unmapped by default

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc" or not Path("/proc/self/statm").exists(),
    reason="glibc on Linux only",
)


def resident() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096


def allocate_and_free() -> None:
    block = torch.ones(SIZE // 4)  # touched: every page resident
    del block


def test_freed_blocks_stay_within_and_go_back_after() -> None:
    before = resident()
    allocate_and_free()
    assert resident() - before < SIZE / 2  # by default, handed back at once
    with freed_memory_kept():
        allocate_and_free()
        kept = resident()
        assert kept - before > SIZE * 0.9
    assert resident() < kept - SIZE * 0.9  # returned on the way out
    allocate_and_free()
    assert resident() < kept - SIZE * 0.9  # and glibc's defaults are back
