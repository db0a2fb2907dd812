"""SIGTERM outside Lightning's fit: recorded like SIGINT instead of killing the job silently (torch-free).

Lightning installs its own SIGTERM handler for ``trainer.fit`` only when none is set (it then stops at a step
boundary; :mod:`gan_interp.callbacks.interrupt` saves the checkpoint). So the job raises :class:`Terminated`
on SIGTERM everywhere else (:func:`stop_on_sigterm`) and hands the signal back to the default for the fit
(:func:`lightning_owns_sigterm`), where Lightning takes it over.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Terminated(BaseException):  # noqa: N818 - like KeyboardInterrupt: a signal, not an error a sweep swallows
    """SIGTERM outside the training steps (data preparation, final metrics), where Lightning's handler is not set."""

    exit_code = 143  # 128 + SIGTERM


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def stop_on_sigterm() -> None:
    """From now on SIGTERM raises :class:`Terminated` (main thread only, as signals are)."""
    if _main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


@contextmanager
def lightning_owns_sigterm() -> Iterator[None]:
    """The default SIGTERM disposition inside the block (Lightning's fit installs its handler on it), the
    previous handler again after it."""
    if not _main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
