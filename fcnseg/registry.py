"""One registry style for everything chosen by name: models, backbones, dataset readers.

A registry maps a name to a builder. Builders register themselves where they are defined
(``@BACKBONES.register("vgg16")``), so adding one is writing it; every registry answers
``names()`` and refuses an unknown name with one line listing the known ones. The test suite
is parametrised over the registries, so a new entry is tested by being registered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from .errors import ConfigError, FcnsegError

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """Named entries of one kind (``"model"``, ``"backbone"``, ``"dataset"``).

    Args:
        kind: what an entry is, for messages.
        error: the error raised for an unknown name.
    """

    def __init__(self, kind: str, *, error: type[FcnsegError] = ConfigError) -> None:
        self.kind, self.error = kind, error
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding its target under ``name``."""

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            raise self.error(f"unknown {self.kind} {name!r}; use one of: {', '.join(self.names())}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)
