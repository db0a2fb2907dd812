"""Stop on SIGTERM / SIGINT at the next step boundary with a resumable checkpoint.

Lightning already catches SIGTERM (``trainer.received_sigterm``) and stops after the current batch,
but it leaves no checkpoint of that step and exits with status 0; Ctrl-C (SIGINT) raises
``KeyboardInterrupt`` wherever the program happens to be. :class:`StopOnSignal` builds on the first:

* SIGINT only sets a flag (a second Ctrl-C aborts at once, as usual);
* at the end of the training batch during which either signal arrived, ``last.ckpt`` is saved -
  the same point where a mid-epoch checkpoint is taken, so resuming reproduces the uninterrupted
  run - and :class:`TrainingInterrupted` is raised (exit status 128 + signal: 143 / 130);
* a SIGTERM that Lightning acts on elsewhere (during validation or the epoch-end hooks) is turned
  into the same :class:`TrainingInterrupted` by :func:`interruption_of`, with the checkpoint of that
  step (the epoch-end ``last.ckpt`` when it was just written, else one saved then);
* a SIGINT that arrives after the last training step lets the run finish normally.

The entry point (``gan_interp.train``) writes ``failure.json``, marks the W&B run and prints the
resume command.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from gan_interp.callbacks.guards import last_checkpoint

log = logging.getLogger(__name__)

LAST = "last.ckpt"


class TrainingInterrupted(BaseException):  # noqa: N818 - like KeyboardInterrupt: not an Exception a sweep swallows
    """Training stopped on a signal at a step boundary; ``checkpoint`` resumes it."""

    def __init__(
        self,
        signum: int,  # signal.SIGTERM or signal.SIGINT
        checkpoint: str | Path | None,  # the resumable checkpoint of this step (None: none could be written)
        epoch: int,  # trainer.current_epoch when it stopped
        global_step: int,  # trainer.global_step when it stopped
    ) -> None:
        self.signum, self.epoch, self.global_step = int(signum), int(epoch), int(global_step)
        self.checkpoint = Path(checkpoint) if checkpoint else None
        super().__init__(str(self))

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process stopped by a signal: 128 + its number."""
        return 128 + self.signum

    def __str__(self) -> str:
        saved = f"saved {self.checkpoint}" if self.checkpoint else "no checkpoint could be saved"
        return f"interrupted by {self.signal_name} at epoch {self.epoch}, step {self.global_step}; {saved}"


def _checkpoint_of_this_step(trainer: L.Trainer) -> str | None:
    """``last.ckpt`` of a ModelCheckpoint that wrote it at the current global step, if any."""
    for cb in trainer.checkpoint_callbacks:
        path = getattr(cb, "last_model_path", "")
        if isinstance(cb, ModelCheckpoint) and path and cb._last_global_step_saved == trainer.global_step:
            return path
    return None


class StopOnSignal(L.Callback):
    """Checkpoint and stop at the next step boundary after SIGTERM or SIGINT (see the module doc)."""

    def __init__(
        self,
        dirpath: str | Path | None = None,  # where last.ckpt goes (None: the run's ModelCheckpoint folder)
    ) -> None:
        self.dirpath = Path(dirpath) if dirpath else None
        self.signum: int | None = None  # SIGINT received (SIGTERM: trainer.received_sigterm)
        self.interruption: TrainingInterrupted | None = None  # set when Lightning stopped on SIGTERM itself
        self._previous_sigint: Any = None

    # -- SIGINT: a flag instead of KeyboardInterrupt -------------------------------------------------
    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # second Ctrl-C: stop now, without a checkpoint
            self._restore_sigint()
            raise KeyboardInterrupt
        self.signum = signum

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous_sigint)
        self._previous_sigint = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after Lightning registered its handlers: its teardown then restores the SIGINT handler of before fit
        self.signum, self.interruption = None, None
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore_sigint()

    # -- the step boundary ----------------------------------------------------------------------------
    def pending(self, trainer: L.Trainer) -> int | None:
        """The signal to stop for, agreed across processes (any rank that got one stops all)."""
        signum = self.signum or (signal.SIGTERM if trainer.received_sigterm else None)
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(signum is not None, all=False)
            signum = (signum or signal.SIGTERM) if stop else None
        return signum

    def save(self, trainer: L.Trainer) -> Path:
        """Write ``<dirpath>/last.ckpt`` now (every rank calls it; rank zero writes)."""
        folder = self.dirpath or getattr(trainer.checkpoint_callback, "dirpath", None)
        path = Path(folder or Path(trainer.default_root_dir) / "checkpoints") / LAST
        trainer.save_checkpoint(path, weights_only=False)  # the full training state: resumable
        return path

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any) -> None:
        signum = self.pending(trainer)
        if signum is None:
            return
        ckpt = self.save(trainer)
        raise TrainingInterrupted(signum, ckpt, trainer.current_epoch, trainer.global_step)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore_sigint()
        if not isinstance(exception, SIGTERMException):
            return
        # Lightning stopped on SIGTERM outside a training step (validation, epoch end): this step's checkpoint
        ckpt = _checkpoint_of_this_step(trainer)
        if ckpt is None:
            try:
                ckpt = str(self.save(trainer))
            except Exception as exc:  # noqa: BLE001 - report the interruption even if saving fails
                log.error("could not save a checkpoint on SIGTERM: %s", exc)
        self.interruption = TrainingInterrupted(signal.SIGTERM, ckpt, trainer.current_epoch, trainer.global_step)


def interruption_of(trainer: L.Trainer | None, exc: BaseException) -> TrainingInterrupted | None:
    """The :class:`TrainingInterrupted` behind ``exc`` (itself, or Lightning's SIGTERM exit), if any."""
    if isinstance(exc, TrainingInterrupted):
        return exc
    if not isinstance(exc, SIGTERMException) or trainer is None:
        return None
    for cb in trainer.callbacks:
        if isinstance(cb, StopOnSignal) and cb.interruption is not None:
            return cb.interruption
    ckpt = _checkpoint_of_this_step(trainer) or last_checkpoint(trainer)
    return TrainingInterrupted(signal.SIGTERM, ckpt, trainer.current_epoch, trainer.global_step)
