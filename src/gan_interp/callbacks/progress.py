"""Training progress as plain log lines, readable in a redirected log file or a CI log.

Lightning's progress bar (rich) redraws one terminal line: written to a file it shows nothing
until the end. :class:`ProgressLog` logs through the ``logging`` module instead (Hydra's console
handler and ``<run>/train.log``), e.g.::

    train: epoch 2/4, batch 37/120, 157 g-steps, 3m10s elapsed, ETA 9m02s, d_loss 1.213, g_loss 0.871

one line every ``every_s`` seconds and one at each epoch end. When stdout is a terminal the rich bar
already shows live progress, so periodic lines use ``tty_every_s`` instead (default ``None``: only
the epoch-end lines). The ETA is for the training loop (all epochs) at this process's mean rate,
which includes the probe/metrics time spent so far.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

import lightning as L

from gan_interp.progress import default_every_s, eta_seconds, format_duration

log = logging.getLogger(__name__)

LOSS_KEYS = ("train/d_loss", "train/g_loss")  # shown as d_loss / g_loss when logged


def stdout_is_terminal() -> bool:
    """True when stdout is an interactive terminal (where the rich bar is visible)."""
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


def last_losses(metrics: dict) -> str:
    """``d_loss 1.213, g_loss 0.871`` from the newest per-step (or else epoch) values; "" if none."""
    parts = []
    for key in LOSS_KEYS:
        for name in (f"{key}_step", key, f"{key}_epoch"):
            value = metrics.get(name)
            if value is not None and getattr(value, "numel", lambda: 1)() == 1:
                parts.append(f"{key.split('/')[-1]} {float(value):.3f}")
                break
    return ", ".join(parts)


class ProgressLog(L.Callback):
    """Log one training-progress line every ``every_s`` seconds and at each epoch end."""

    def __init__(
        self,
        every_s: float | None = None,  # seconds between lines when stdout is not a terminal (None: 30 or env)
        tty_every_s: float | None = None,  # the same on a terminal (None: epoch-end lines only)
        is_terminal: Callable[[], bool] = stdout_is_terminal,  # injectable for tests
        clock: Callable[[], float] = time.monotonic,  # injectable for tests
    ) -> None:
        self.every_s = default_every_s() if every_s is None else float(every_s)
        self.tty_every_s, self.is_terminal, self.clock = tty_every_s, is_terminal, clock
        self._interval: float | None = None
        self._start = self._last = 0.0
        self._first_batch = 0  # global batch index this process started at (resume)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._interval = self.tty_every_s if self.is_terminal() else self.every_s
        self._start = self._last = self.clock()
        self._first_batch = trainer.current_epoch * self._batches(trainer)

    @staticmethod
    def _batches(trainer: L.Trainer) -> int:
        n = trainer.num_training_batches
        return int(n) if n not in (None, float("inf")) else 0

    def line(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: int, now: float) -> str:
        """The progress line after ``batch`` (1-based) batches of the current epoch."""
        n_batches, max_epochs = self._batches(trainer), trainer.max_epochs
        epochs = (
            f"{trainer.current_epoch + 1}/{max_epochs}"
            if max_epochs and max_epochs > 0
            else f"{trainer.current_epoch + 1}"
        )
        elapsed = now - self._start
        parts = [f"train: epoch {epochs}, batch {batch}/{n_batches or '?'}"]
        parts.append(f"{int(getattr(pl_module, 'g_steps', trainer.global_step))} g-steps")
        parts.append(f"{format_duration(elapsed)} elapsed")
        done = trainer.current_epoch * n_batches + batch
        total = (max_epochs or 0) * n_batches if max_epochs and max_epochs > 0 else 0
        eta = eta_seconds(done - self._first_batch, total - self._first_batch, elapsed) if total else None
        if eta is not None:
            parts.append(f"ETA {format_duration(eta)}")
        losses = last_losses(dict(trainer.callback_metrics))
        return ", ".join(parts + ([losses] if losses else []))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if self._interval is None or batch_idx + 1 == self._batches(trainer):  # the epoch-end line follows
            return
        now = self.clock()
        if now - self._last >= self._interval:
            self._last = now
            log.info("%s", self.line(trainer, pl_module, batch_idx + 1, now))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = self.clock()
        self._last = now
        log.info("%s", self.line(trainer, pl_module, self._batches(trainer), now))
