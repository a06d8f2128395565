"""Errors for people: one line that names the value or file and says what to do.

Every mistake a user can make (a flag, a setting, a file) raises a subclass of
:class:`FcnsegError`; the command line prints its one line and exits non-zero, no traceback.
This module imports nothing, so every layer may raise these.
"""

from __future__ import annotations


class FcnsegError(Exception):
    """A problem the user can fix. Its message is one line, naming the file and the fix.

    The command line prints it as ``error: <message>`` and exits with status 2, no traceback.
    """

    def __init__(self, message: object = "") -> None:
        # A DataLoader re-raises an error from a worker process as ``type(error)(text)`` where
        # the text is "Caught DataError in DataLoader worker process 0.\nOriginal Traceback…"
        # ending in "fcnseg.errors.DataError: <message>". Keep the person's one line only.
        if (
            isinstance(message, str)
            and message.startswith("Caught ")
            and "\nOriginal Traceback" in message
        ):
            last = message.rstrip().splitlines()[-1]
            message = last.partition(": ")[2] or message
        if isinstance(message, str):
            # One line whatever the values quoted in it hold (a file name, a YAML key):
            # line breaks are shown escaped, as repr() would.
            message = message.replace("\r", "\\r").replace("\n", "\\n")
        super().__init__(message)


class ConfigError(FcnsegError, ValueError):
    """A setting, flag or argument with a value that cannot work (an unknown name, a size
    out of range)."""


class DataError(FcnsegError):
    """A bad image, mask or dataset directory."""


class CheckpointError(FcnsegError):
    """A weight file that is missing, unsafe, or made for another model."""
