"""Choosing the arithmetic: which reduced precisions the hardware computes natively, and which
of them keeps the answer (the class map of fp32 on :data:`AGREEMENT` of the pixels) fastest.

The choice is measured on the user's machine at run time, never decided in advance:
:func:`choose_precision` runs every candidate on a calibration sample and returns a
:class:`Calibration` record of what it measured and what it chose.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..device import cpu_has_bf16, cpu_has_fp16, native_precisions
from .outputs import Output

__all__ = [
    "AGREEMENT",
    "PRECISIONS",
    "Calibration",
    "auto_candidates",
    "choose_precision",
    "warn_if_emulated",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
# ``precision="auto"`` considers a reduced precision only if its class map agrees with fp32's on
# at least this share of the pixels of a calibration image.
AGREEMENT = 0.995


# The reduced precisions ``auto`` tries on a device: those its hardware computes natively
# (emulated ones are slower than fp32). A name of this module's, so that tests can replace it.
auto_candidates = native_precisions


def warn_if_emulated(precision: str, device: torch.device) -> None:
    """Warn when ``precision`` was asked for on a CPU that would only emulate it."""
    if device.type == "cpu" and precision == "bf16" and not cpu_has_bf16():
        warnings.warn(
            "this CPU has no bf16 instructions: bf16 is emulated and slower than fp32", stacklevel=4
        )
    if device.type == "cpu" and precision == "fp16" and not cpu_has_fp16():
        warnings.warn(
            "this CPU has no fp16 instructions: fp16 is emulated and slower than "
            "fp32; prefer bf16 or auto",
            stacklevel=4,
        )


@dataclass(frozen=True)
class Calibration:
    """What calibration measured: each candidate tried (a precision, or ``ENGINE:PRECISION``
    with ``backend="auto"``), the share of pixels whose class it gives as fp32 does, the
    seconds of those timed (only when there was a choice), the one chosen, what calibrating
    cost in seconds, and whether the choice came from the cache of an earlier run."""

    chosen: str
    agreement: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    cost: float = 0.0
    cached: bool = False

    def describe(self) -> str:
        """One line: what was chosen, against what, at what cost."""
        name = self.chosen.replace(":", " ")
        if not self.seconds:
            return f"engine: {name}" + (" (from the calibration cache)" if self.cached else "")
        timed = ", ".join(
            f"{p.replace(':', ' ')} {t:.3g} s ({100 * self.agreement[p]:.2f}%)"
            for p, t in sorted(self.seconds.items(), key=lambda item: item[1])
        )
        how = "from the calibration cache" if self.cached else f"calibrated in {self.cost:.1f} s"
        return f"engine: {name}, the fastest at ≥{AGREEMENT:.1%} agreement: {timed}; {how}"


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def choose_precision(
    labels: Callable[[str], Tensor], candidates: Sequence[str], *, forced: bool = False
) -> Calibration:
    """Measure ``candidates`` against fp32 and choose.

    Args:
        labels: the class map of the calibration sample at a precision (waits for the device:
            its result is on the CPU or synchronised).
        candidates: the reduced precisions to try.
        forced: the one candidate was asked for by name: it is checked (and a disagreement
            warned about), not chosen against fp32.
    """
    reference = labels("fp32")
    agree = {"fp32": 1.0, **{p: (labels(p) == reference).float().mean().item() for p in candidates}}
    if forced:
        (chosen,) = candidates
        if agree[chosen] < AGREEMENT:
            warnings.warn(
                f"{chosen} agrees with fp32 on {agree[chosen]:.2%} of the pixels, "
                f"under {AGREEMENT:.1%}",
                stacklevel=3,
            )
        return Calibration(chosen, agree)
    kept = ["fp32"] + [p for p in candidates if agree[p] >= AGREEMENT]
    if len(kept) == 1:
        shares = ", ".join(f"{p} on {agree[p]:.2%}" for p in candidates)
        warnings.warn(
            f"reduced precision agrees with fp32 on too few pixels ({shares}, "
            f"under {AGREEMENT:.1%}): using fp32",
            stacklevel=3,
        )
        return Calibration("fp32", agree)
    # The runs above built each network and warmed it up: now the best of two timed runs each.
    seconds = {p: min(_seconds(lambda p=p: labels(p)) for _ in range(2)) for p in kept}
    return Calibration(min(seconds, key=seconds.get), agree, seconds)


def plan(
    precision: str, backend: Any, device: torch.device
) -> tuple[tuple[str, ...], Calibration | None]:
    """What calibration will try for a requested ``precision`` on ``backend`` (a
    :class:`~.backends.Backend`) and ``device``, and the settled :class:`Calibration` when
    there is nothing to measure."""
    if precision == "auto":
        candidates = backend.candidates(device)
    else:
        candidates = ("int8",) if precision == "int8" else ()
        warn_if_emulated(precision, device)
    settled = None if candidates else Calibration("fp32" if precision == "auto" else precision)
    return candidates, settled


def calibrate(backend: Any, batch: Tensor, candidates: Sequence[str]) -> Calibration:
    """Choose the precision (and with ``backend="auto"`` the engine) of ``backend`` (a
    :class:`~.backends.Backend`) on a uint8 batch: what is about to be segmented, whole.

    ``candidates`` is ``("int8",)`` when int8 was asked for: the quantisation's activation
    ranges are calibrated on the batch and a disagreement with fp32 is warned about. Otherwise
    the batch is run at fp32 and with each candidate, and :func:`choose_precision` decides.
    """
    start = time.perf_counter()
    span = (0, batch.shape[-2]), (0, batch.shape[-1])
    kind = Output.of_model(backend.meta)

    def labels(precision: str) -> Tensor:
        bands = backend.scores(batch, *span, precision)
        return torch.cat([kind.of(s) for s in bands], -2).cpu()

    forced = tuple(candidates) == ("int8",)
    with torch.inference_mode():
        if forced:
            backend.quantize(batch)
        chosen = choose_precision(labels, candidates, forced=forced)
    return dataclasses.replace(chosen, cost=time.perf_counter() - start)


# -------------------------------------------------------------------- the calibration cache

CACHE_ENV = "FCNSEG_CACHE_DIR"


def cache_dir() -> Path:
    """Where calibrations are kept: ``$FCNSEG_CACHE_DIR``, else ``$XDG_CACHE_HOME/fcnseg``
    (``~/.cache/fcnseg``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fcnseg"


def weights_digest(weights: dict[str, Tensor] | Path) -> str:
    """A hash of a model's weights: its state dict, or the bytes of its file."""
    digest = hashlib.blake2b(digest_size=16)
    if isinstance(weights, Path):
        with open(weights, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
    else:
        for name, tensor in weights.items():
            digest.update(name.encode())
            raw = tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8)
            digest.update(memoryview(raw.numpy()))
    return digest.hexdigest()


def cache_key(weights: dict[str, Tensor] | Path, batch: Tensor, candidates: Sequence[str]) -> str:
    """What a calibration depends on: the weights (hashed), the machine (CPU, its threads, the
    engines' versions), the batch's shape and type, the candidates and the agreement asked."""
    about = [_machine(), list(batch.shape), str(batch.dtype), list(candidates), AGREEMENT]
    text = json.dumps([weights_digest(weights), *about])
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@lru_cache(maxsize=1)
def _machine() -> list[str]:
    import importlib.metadata as metadata

    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            cpu,
        )
    versions = []
    for package in ("torch", "onnxruntime", "openvino"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{package} {metadata.version(package)}")
    return [cpu, str(torch.get_num_threads()), *versions]


def cached(key: str) -> Calibration | None:
    """The calibration stored under ``key`` by an earlier run, if any."""
    path = cache_dir() / "calibration.json"
    try:
        entry = json.loads(path.read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("chosen"), str):
        return None
    return Calibration(
        entry["chosen"], entry.get("agreement", {}), entry.get("seconds", {}), 0.0, cached=True
    )


def store(key: str, calibration: Calibration) -> None:
    """Keep ``calibration`` for the next run; a cache that cannot be written is skipped."""
    from ..files.atomic import atomic_write

    path = cache_dir() / "calibration.json"
    try:
        entries = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        entries = {}
    if not isinstance(entries, dict):
        entries = {}
    entries[key] = {
        "chosen": calibration.chosen,
        "agreement": calibration.agreement,
        "seconds": calibration.seconds,
    }
    text = json.dumps(entries)
    with contextlib.suppress(Exception):  # a read-only home must not stop a prediction
        atomic_write(path, lambda tmp: tmp.write_text(text))
