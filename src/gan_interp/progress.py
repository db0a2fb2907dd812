"""One-line, rate-limited progress for long jobs, through the ``logging`` module.

Works the same on a terminal, in a redirected log file and in a CI log: nothing is redrawn, every
line is a plain log record, e.g. ``decode cache: 1200/5000 (24%) 1m02s elapsed, ETA 3m17s``.

Contract of :class:`Progress`:
- ``update(n)`` adds ``n`` done items and logs one line when ``every_s`` seconds have passed since
  the job started or since the last line (never more than one line per ``every_s``);
- ``close()`` logs the final ``done`` line at INFO when the job took at least ``min_s`` seconds or
  already logged a periodic line, else at DEBUG (short jobs stay quiet); it is idempotent;
- the clock is injectable (``clock=``) so tests use a fake one.

``GAN_INTERP_PROGRESS_S`` (seconds) overrides the default interval of every job at once, e.g.
``GAN_INTERP_PROGRESS_S=5`` for a CI log; sites that pass ``every_s`` explicitly keep theirs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

ENV_EVERY_S = "GAN_INTERP_PROGRESS_S"
DEFAULT_EVERY_S = 30.0

log = logging.getLogger(__name__)


def default_every_s() -> float:
    """The interval between progress lines: ``$GAN_INTERP_PROGRESS_S`` or 30 s."""
    raw = os.environ.get(ENV_EVERY_S)
    if not raw:
        return DEFAULT_EVERY_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        from gan_interp.errors import ConfigError

        raise ConfigError(f"invalid {ENV_EVERY_S}={raw!r}: it must be a number of seconds > 0 (e.g. 30)")
    return value


def format_duration(seconds: float) -> str:
    """``42s``, ``3m07s``, ``2h05m`` (coarse on purpose: log lines, not benchmarks)."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def eta_seconds(done: float, total: float, elapsed: float) -> float | None:
    """Remaining seconds at the mean rate so far; None when unknown (nothing done or no total)."""
    if not total or done <= 0:
        return None
    return max(0.0, elapsed * (total - done) / done)


class Progress:
    """Periodic one-line progress of a job with ``total`` items (``None`` = unknown total)."""

    def __init__(
        self,
        total: int | None,  # number of items the job will process (None: unknown, no % or ETA)
        label: str,  # what is running, first word(s) of every line ("decode cache", "fid fakes")
        every_s: float | None = None,  # seconds between lines (None: $GAN_INTERP_PROGRESS_S or 30)
        unit: str = "",  # appended to the counts ("images", "posters"); "" for none
        min_s: float = 10.0,  # a job shorter than this logs its final line at DEBUG only
        logger: logging.Logger | None = None,  # where lines go (default: gan_interp.progress)
        clock: Callable[[], float] = time.monotonic,  # injectable for tests
    ) -> None:
        self.total, self.label, self.unit, self.min_s = total, label, unit, min_s
        self.every_s = default_every_s() if every_s is None else float(every_s)
        self.logger = logger or log
        self.clock = clock
        self.done = 0
        self.lines = 0  # periodic lines logged so far
        self.closed = False
        self._start = self._last = clock()

    def _counts(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.total is None:
            return f"{self.done}{unit}"
        pct = f" ({100.0 * self.done / self.total:.0f}%)" if self.total else ""
        return f"{self.done}/{self.total}{unit}{pct}"

    def line(self, now: float) -> str:
        """The progress line at time ``now`` (without the final ``done``)."""
        elapsed = now - self._start
        text = f"{self.label}: {self._counts()} {format_duration(elapsed)} elapsed"
        eta = eta_seconds(self.done, self.total or 0, elapsed)
        return text if eta is None else f"{text}, ETA {format_duration(eta)}"

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items; log a line if ``every_s`` passed since the last one."""
        self.done += n
        now = self.clock()
        if now - self._last >= self.every_s:
            self._last = now
            self.lines += 1
            self.logger.info("%s", self.line(now))

    def close(self) -> None:
        """Log the final line (INFO if the job was long or already reported, else DEBUG)."""
        if self.closed:
            return
        self.closed = True
        now = self.clock()
        elapsed = now - self._start
        level = logging.INFO if self.lines or elapsed >= self.min_s else logging.DEBUG
        if self.total is not None and self.done < self.total:  # left early (error, Ctrl-C, break)
            self.logger.log(level, "%s: stopped at %s after %s", self.label, self._counts(), format_duration(elapsed))
            return
        unit = f" {self.unit}" if self.unit else ""
        self.logger.log(level, "%s: done, %d%s in %s", self.label, self.done, unit, format_duration(elapsed))

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(items: Iterable[T], label: str, total: int | None = None, **kwargs) -> Iterator[T]:
    """Yield ``items`` while reporting one :class:`Progress` line per ``every_s`` (kwargs: Progress's)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, label, **kwargs) as progress:
        for item in items:
            yield item
            progress.update(1)
