"""How scores become labels: the class of the largest score (§5 scores the argmax), or, for a
two-class model, the foreground wherever its probability reaches a threshold of the user's
(vessels, cracks, roads: a precision–recall trade of their own). One rule for ``fcnseg eval``
and for the :class:`~fcnseg.inference.Predictor`, so that a threshold chosen on a validation
split gives the same masks when predicting.
"""

from __future__ import annotations

from torch import Tensor

from ..errors import ConfigError

__all__ = ["check_threshold", "labels"]


def check_threshold(threshold: float | None, num_classes: int) -> None:
    """Refuse a ``threshold`` outside (0, 1), or for a model of other than two classes.

    Raises:
        ConfigError: one line naming the value and the fix.
    """
    if threshold is None:
        return
    if not 0 < threshold < 1:
        raise ConfigError(f"threshold must lie strictly between 0 and 1, not {threshold!r}")
    if num_classes != 2:
        raise ConfigError(
            f"a threshold needs a two-class model, not one of {num_classes} classes; "
            "drop --threshold"
        )


def labels(scores: Tensor, threshold: float | None = None) -> Tensor:
    """Class indices N×H×W of scores N×C×H×W: the argmax (its first maximum), or with a
    ``threshold`` (two classes) class 1 where its softmax probability reaches it."""
    if threshold is not None:
        return (scores.softmax(1)[:, 1] >= threshold).long()
    # max(1).indices: the first maximum, as argmax, several times faster.
    return scores.max(1).indices
