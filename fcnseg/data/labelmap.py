"""Label maps: mask values as stored → class indices as trained, one line for the common cases.

Written in ``classes.json`` as ``"map": {...}`` or given as ``--label-map``:

* binary masks saved as 0/255: ``{"255": 1}`` (``--label-map 255:1``);
* Cityscapes ids → train ids: ``{"7": 0, "8": 1, …, "*": "ignore"}``;
* "0 is unlabelled, shift the rest down" (ADE20K): ``{"0": "ignore", "*": "-1"}``.

Each key is a stored value; each value a class index or ``"ignore"``. The key ``"*"`` says what
happens to every other value: ``"ignore"``, or a signed offset (``"-1"``); without it other
values are kept as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["LabelMap"]

IGNORE = "ignore"


@dataclass(frozen=True)
class LabelMap:
    """``values``: stored value → class (``None``: ignore); ``others``: ``"keep"``,
    ``"ignore"`` or an integer offset for the values not listed."""

    values: dict[int, int | None] = field(default_factory=dict)
    others: str | int = "keep"

    @classmethod
    def parse(cls, spec: Any, *, source: str) -> LabelMap:
        """From ``classes.json``'s mapping or the flag's ``"V:C,V:ignore,*:-1"``."""
        if isinstance(spec, str):
            try:
                spec = dict(item.split(":", 1) for item in spec.split(",") if item.strip())
            except ValueError:
                raise DataError(
                    f"{source}: a label map is VALUE:CLASS pairs separated by "
                    f"commas (e.g. 255:1 or 0:ignore,*:-1), not {spec!r}"
                ) from None
        if not isinstance(spec, dict) or not spec:
            raise DataError(f'{source}: "map" must map mask values to classes, e.g. {{"255": 1}}')
        values: dict[int, int | None] = {}
        others: str | int = "keep"
        for key, value in spec.items():
            key, value = str(key).strip(), str(value).strip() if isinstance(value, str) else value
            if key == "*":
                others = _others(value, source)
                continue
            stored = _whole(key, source, "a mask value")
            values[stored] = None if value == IGNORE else _whole(value, source, "a class index")
        return cls(values, others)

    def apply(self, labels: np.ndarray, ignore_index: int) -> np.ndarray:
        """``labels`` (int64) with the map applied; the ignore label for ignored values."""
        if not self.values and self.others == "keep":
            return labels
        present, inverse = np.unique(labels, return_inverse=True)
        mapped = np.array([self._one(int(v), ignore_index) for v in present], dtype=np.int64)
        return mapped[inverse].reshape(labels.shape)

    def _one(self, value: int, ignore_index: int) -> int:
        if value in self.values:
            target = self.values[value]
            return ignore_index if target is None else target
        if self.others == "keep" or value == ignore_index:
            return value
        return ignore_index if self.others == IGNORE else value + int(self.others)


def _whole(text: Any, source: str, what: str) -> int:
    try:
        number = int(text)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(text, bool) or number < 0:
        raise DataError(f"{source}: label map: {text!r} is not {what} (a whole number ≥ 0)")
    return number


def _others(value: Any, source: str) -> str | int:
    if value == IGNORE:
        return IGNORE
    if isinstance(value, str) and value[:1] in "+-" and value[1:].isdigit():
        return int(value)
    raise DataError(
        f'{source}: label map: "*" takes "ignore" or an offset such as "-1", not {value!r}'
    )
