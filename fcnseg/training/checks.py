"""Checking every training setting's type and range where it enters, whatever its source (a
flag, a YAML file, the Python API), so that a wrong value is one line before anything runs.

Types come from :class:`~.config.TrainConfig`'s annotations; ranges from :data:`BOUNDS`.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models.meta import MAGNIFY

__all__ = ["BOUNDS", "check_setting"]

# name → (low, high, low included, high included); None: unbounded on that side.
BOUNDS: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "epochs": (1, None, True, True),
    "val_every": (1, None, True, True),
    "repeat": (1, None, True, True),
    "batch_size": (1, None, True, True),
    "accumulate": (1, None, True, True),
    "val_batch_size": (1, None, True, True),
    "workers": (0, None, True, True),
    "checkpoint_every": (0, None, True, True),
    "seed": (0, 2**63 - 1, True, True),
    "warmup_steps": (0, None, True, True),
    "max_pixels": (1, None, True, True),
    "in_channels": (1, 1024, True, True),
    "lr": (0, None, False, True),
    "max_minutes": (0, None, False, True),
    "weight_decay": (0, None, True, True),
    "momentum": (0, 1, True, False),
    "backbone_lr_mult": (0, None, True, True),
    "bias_lr_mult": (0, None, True, True),
    "poly_power": (0, None, False, True),
    "jitter": (0, 1, True, True),
    "rotate": (0, 180, True, True),
    "loss_sampling": (0, 1, False, True),
    "crop": (1, None, True, True),  # each side
    "scale": (0, None, False, True),  # each end
    "magnify": (*MAGNIFY, True, True),
    "inference_magnify": (*MAGNIFY, True, True),
    "ema": (0, 1, False, False),
}

# Words YAML 1.1 reads as booleans: as text, a setting of "true or a path" was meant as one.
_YES_NO = {"true", "false", "yes", "no", "on", "off", "y", "n"}


def _name(name: str) -> str:
    return f"--{name.replace('_', '-')} ({name})"


def _number(name: str, value: Any, kind: str) -> float:
    """``value`` as an int or a finite float, or a one-line error. YAML 1.1 reads ``1e-3`` as
    text, so numeric text is taken for a float."""
    if kind == "float" and isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            f"{_name(name)}: expected a {'whole ' * (kind == 'int')}number, not {value!r}"
        )
    if kind == "int" and not isinstance(value, int):
        if not (math.isfinite(value) and value == int(value)):
            raise ConfigError(f"{_name(name)}: expected a whole number, not {value!r}")
        value = int(value)
    if not math.isfinite(value):
        raise ConfigError(f"{_name(name)}: expected a finite number, not {value!r}")
    low, high, low_in, high_in = BOUNDS.get(name, (None, None, True, True))
    if (low is not None and (value < low or (value == low and not low_in))) or (
        high is not None and (value > high or (value == high and not high_in))
    ):
        left = "[" if low_in else "("
        right = "]" if high_in and high is not None else ")"
        span = (
            f"{left}{low if low is not None else '-∞'}, {high if high is not None else '∞'}{right}"
        )
        raise ConfigError(f"{_name(name)}: must lie in {span}, not {value!r}")
    return value


def check_setting(name: str, annotation: str, value: Any) -> Any:
    """``value`` checked against the annotation (``"int"``, ``"float | None"``,
    ``"tuple[int, int] | None"``…) and :data:`BOUNDS`; returned normalised (ints for whole
    floats, numbers for numeric text, tuples for lists)."""
    kinds = [a.strip() for a in annotation.split("|")]
    if value is None:
        if "None" in kinds:
            return None
        raise ConfigError(f"{_name(name)}: needs a value")
    if isinstance(value, bool):
        if "bool" in kinds:
            return value
        if not any(k in kinds for k in ("int", "float")):
            raise _wrong(name, kinds, value)
    # A true-or-path setting given "false" as text (a flag's value) would take it for a path.
    either = {"bool", "str"} <= set(kinds) and isinstance(value, str)
    if either and value.lower() in _YES_NO and not Path(value).exists():
        raise ConfigError(
            f"{_name(name)}: {value!r} would be read as a file name; on the command line "
            "give the flag alone for true and leave it out for false (true or false "
            "unquoted in YAML)"
        )
    if isinstance(value, str) and "str" in kinds or isinstance(value, dict) and "dict" in kinds:
        return value
    for kind in ("int", "float"):
        if kind in kinds:
            return _number(name, value, kind)
    tuples = [k for k in kinds if k.startswith("tuple[")]
    if tuples and isinstance(value, (list, tuple)):
        inner = [t.strip() for t in tuples[0][6:-1].split(",")]
        kind = inner[0]
        if inner[-1] != "..." and len(value) != len(inner):
            raise ConfigError(f"{_name(name)}: expected {len(inner)} values, not {list(value)!r}")
        items = tuple(_number(name, v, kind) for v in value)
        if name == "scale" and items[0] > items[1]:
            raise ConfigError(f"{_name(name)}: MIN must not exceed MAX, not {list(items)}")
        return items
    raise _wrong(name, kinds, value)


def _wrong(name: str, kinds: list[str], value: Any) -> ConfigError:
    words = {"bool": "true or false", "str": "text", "None": "nothing", "dict": "a mapping"}
    wanted = " or ".join(words.get(k, k) for k in kinds)
    return ConfigError(f"{_name(name)}: expected {wanted}, not {value!r}")
