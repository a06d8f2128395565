"""Ctrl-C during training as a request: stop at the next optimiser step, where the state is
whole and can be saved; a second Ctrl-C stops at once."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

__all__ = ["StopRequest"]


class StopRequest:
    """Whether Ctrl-C asked to stop (``asked``), and whether a step was cut short by a second
    one (``whole`` false). Under torchrun every process would have to agree on the step, so
    there (and off the main thread) the first Ctrl-C stops at once, as Python's own does."""

    def __init__(self, *, enabled: bool, say: Callable[[str], None]) -> None:
        self.enabled, self.say = enabled, say
        self.asked, self.whole = False, True

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Within this block, Ctrl-C sets :attr:`asked` instead of raising at once."""
        if not self.enabled or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self._ask)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _ask(self, signum: int, frame: object) -> None:
        if self.asked:
            self.whole = False
            raise KeyboardInterrupt
        self.asked = True
        self.say("stopping after this step to save it (Ctrl-C again: at once)")
