"""Errors and warnings raised by kdfair.

Every error a user can cause is a :class:`KdfairError`. The CLI prints its message on one line and exits
with status 2. Undefined-but-legal situations (a group with no positives, a Welch test with zero variance
in both groups) are a :class:`KdfairWarning` that names what was left out.
"""

from __future__ import annotations


class KdfairError(Exception):
    """A user-facing error; its message is one line that names what is wrong."""


class ConfigError(KdfairError):
    """A config file or value is invalid."""


class DataError(KdfairError):
    """Data files are missing, malformed or inconsistent."""


class PredictionFormatError(KdfairError):
    """A run folder does not follow the prediction format (README, "Prediction format")."""


class KdfairWarning(UserWarning):
    """An undefined quantity was left out of a computation; the message names it."""
