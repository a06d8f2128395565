"""A time budget for training (``--max-minutes``): how many epochs fit, measured as the run goes.

A step's pace differs several-fold between machines (AVX-512 against AVX2 cores, a GPU), so a
recipe written as a number of epochs takes 21 minutes on one machine and 57 on the next. Under
a budget the run times its own epochs and, after each, keeps only as many of ``--epochs`` as
still fit; the learning-rate schedule is re-drawn to end with the last of them, so a short run
still anneals. The first epoch's time holds the one-off steps of :mod:`.fastest` (a compile
can take minutes): its pace leaves them out, and once later epochs are timed, the pace is
theirs. The plan follows the clock: a run resumed under a budget can anneal on another
schedule than the uninterrupted run would have (resumption is bit-exact without one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["epochs_that_fit", "pace"]


def pace(times: Sequence[float], one_off: float = 0.0) -> float:
    """Seconds per epoch from the finished epochs' ``times``: the mean after the first, or the
    first alone less its ``one_off`` seconds (warming up and compiling the step)."""
    if len(times) == 1:
        # An epoch that was nearly all compiling still counts a tenth of its time, not nothing.
        return max(times[0] - one_off, times[0] / 10)
    return sum(times[1:]) / (len(times) - 1)


def epochs_that_fit(
    budget_s: float, times: Sequence[float], most: int, one_off: float = 0.0
) -> int:
    """The epochs a run takes in all: those done (``times``, in seconds, at least one) and as
    many more as fit in what is left of ``budget_s`` at the :func:`pace` so far, at most
    ``most``."""
    each = pace(times, one_off)
    if each <= 0:  # epochs too short to time (their times are kept to 0.01 s)
        return most
    more = math.floor((budget_s - sum(times)) / each)
    return min(most, len(times) + max(0, more))
