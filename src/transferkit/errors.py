"""Errors a user can act on.

Every problem caused by the user's input or settings raises :class:`TransferKitError` with a one-line
message that says what is wrong and how to fix it. The CLI prints that line and exits with status 2.
"""

from __future__ import annotations


class TransferKitError(Exception):
    """A problem with the user's input or settings, explained in one line."""


class DataError(TransferKitError, ValueError):
    """The data cannot be used as given (missing file, unknown column, bad labels...)."""


class ModelFolderError(TransferKitError, ValueError):
    """A path that should be a transferkit model folder is not one, or is damaged."""


class BackboneError(TransferKitError, ValueError):
    """A backbone cannot be found, installed or loaded."""
