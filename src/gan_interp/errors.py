"""User-facing errors.

Every error a user can cause by a bad value (config, path, data) is one of these. Entry points
catch them and print a single line ``error: <message>`` instead of a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn


class GanInterpError(Exception):
    """Base class of errors with a message meant for the user (one line, names the bad value)."""


class ConfigError(GanInterpError, ValueError):
    """A configuration value is invalid; the message names the field and how to fix it."""


class DataError(GanInterpError):
    """A data source is missing or unreadable; the message says where we looked."""


def exit_with_error(exc: GanInterpError, log: logging.Logger | None = None) -> NoReturn:
    """Print ``error: <message>`` on stderr (and to ``log``, if given) and exit with status 2."""
    if log is not None:
        log.error("%s", exc)
    print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(2) from None


@contextmanager
def one_line_errors(log: logging.Logger | None = None) -> Iterator[None]:
    """Entry-point guard: a :class:`GanInterpError` inside becomes :func:`exit_with_error`."""
    try:
        yield
    except GanInterpError as exc:
        exit_with_error(exc, log)
