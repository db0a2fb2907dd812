"""User-facing errors.

Every error a user can cause by a bad value (config, path, data) is one of these. Entry points
catch them and print a single line ``error: <message>`` instead of a traceback.
"""

from __future__ import annotations


class GanInterpError(Exception):
    """Base class of errors with a message meant for the user (one line, names the bad value)."""


class ConfigError(GanInterpError, ValueError):
    """A configuration value is invalid; the message names the field and how to fix it."""


class DataError(GanInterpError):
    """A data source is missing or unreadable; the message says where we looked."""
