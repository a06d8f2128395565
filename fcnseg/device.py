"""Where computation runs: the device a name means, the precisions its CPU computes natively,
and mixed precision on it.

Shared by training, evaluation and inference; it imports torch and nothing of fcnseg's but
its errors.
"""

from __future__ import annotations

import contextlib
import ctypes
import platform
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import torch

from .errors import ConfigError

__all__ = [
    "autocast",
    "cpu_has_bf16",
    "cpu_has_fp16",
    "freed_memory_kept",
    "native_precisions",
    "resolve_device",
]


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when there is a GPU, else the CPU; ``cuda:N`` must exist."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"--device {name}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name} but no CUDA device is visible; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA "
                "device(s) are visible; use a lower index"
            )
    elif device.type != "cpu":
        raise ConfigError(f"--device {name}: not supported; use auto, cpu, cuda or cuda:N")
    return device


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Mixed precision for ``amp`` in ``off``, ``bf16``, ``fp16`` (fp16 only on CUDA)."""
    if amp == "off":
        return contextlib.nullcontext()
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("--amp fp16 needs a CUDA device; on the CPU use --amp bf16")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AMX tiles or AVX-512 BF16).

    Without them oneDNN emulates bf16 and it is slower than fp32, so the rule is by instruction
    set, not by what oneDNN accepts.
    """
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


@lru_cache(maxsize=1)
def cpu_has_fp16() -> bool:
    """Whether this CPU computes in float16 natively (AVX-512 FP16 or AMX FP16)."""
    if getattr(torch.cpu, "_is_amx_fp16_supported", lambda: False)():
        return True
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.exists() and " avx512_fp16" in cpuinfo.read_text()


def native_precisions(device: torch.device) -> tuple[str, ...]:
    """The reduced precisions ``device`` computes natively, of bf16 and fp16: elsewhere they are
    emulated, slower than fp32."""
    if device.type == "cuda":
        return ("bf16", "fp16") if torch.cuda.is_bf16_supported() else ("fp16",)
    if device.type != "cpu":
        return ()
    return tuple(p for p, native in (("bf16", cpu_has_bf16()), ("fp16", cpu_has_fp16())) if native)


# glibc's mallopt parameters (malloc.h) and its defaults, restored afterwards.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}
_depth = 0  # blocks open: validation keeps memory inside training's block, which restores


@contextlib.contextmanager
def freed_memory_kept() -> Iterator[None]:
    """Within: memory the process frees stays in it for its next allocations (glibc only;
    elsewhere nothing changes). Afterwards glibc's defaults are back and the kept memory is
    returned to the system.

    By default glibc serves each allocation above 32 MiB by its own ``mmap`` and hands it back
    on ``free``, and returns the top of its heap when over 128 KiB is free there. A training
    step allocates and frees the same few GiB of activations each time, so every step
    page-faulted them in anew, zeroed by the kernel: on the CamVid recipe (2-core EPYC) that
    was over half the step (4.3 img/s against 11.0 with freed memory kept). The memory kept is
    the step's peak, which the next step needs again. Evaluation keeps it too (101 CamVid
    frames: 11.5 s against 14.4 s for ``fcnseg eval``, start-up included). Blocks nest; the
    outermost restores.
    """
    global _depth
    libc = _glibc()
    if libc is None or _depth:  # not glibc, or kept already: an outer block restores
        yield
        return
    libc.mallopt(_M_MMAP_MAX, 0)  # large blocks from the heap too, where they are reused
    libc.mallopt(_M_TRIM_THRESHOLD, -1)  # -1: never trim (mallopt(3))
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        for parameter, value in _DEFAULTS.items():
            libc.mallopt(parameter, value)
        libc.malloc_trim(0)


def _glibc() -> ctypes.CDLL | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None
