"""Errors for people: one line that names the file and says what to do."""

from __future__ import annotations


class FcnsegError(Exception):
    """A problem the user can fix. Its message is one line, naming the file and the fix.

    The command line prints it as ``error: <message>`` and exits with status 2, no traceback.
    """


class DataError(FcnsegError):
    """A bad image, mask or dataset directory."""


class CheckpointError(FcnsegError):
    """A weight file that is missing, unsafe, or made for another model."""
