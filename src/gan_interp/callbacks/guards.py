"""Reliability guards: stop on divergence with a clear message; check the output dir before work
(free space before each checkpoint: :class:`gan_interp.callbacks.checkpointing.AtomicCheckpointIO`)."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch

from gan_interp.disk import preflight_output_dir
from gan_interp.errors import GanInterpError

__all__ = ["DivergenceGuard", "TrainingDiverged", "last_checkpoint", "preflight_output_dir"]


class TrainingDiverged(GanInterpError):
    """Losses or weights became NaN/inf; the last good checkpoint is kept."""


def last_checkpoint(trainer: L.Trainer) -> str | None:
    """Path of the newest checkpoint written by a ModelCheckpoint callback, if any."""
    for cb in trainer.checkpoint_callbacks:
        path = getattr(cb, "last_model_path", "") or getattr(cb, "best_model_path", "")
        if path and Path(path).is_file():
            return path
    return None


class DivergenceGuard(L.Callback):
    """Stop training when logged losses (or, every ``check_weights_every`` steps, weights) go non-finite.

    Raising from ``on_train_batch_end`` happens before the epoch-end checkpoint, so ``last.ckpt``
    stays the last good state; the message names the bad value and that checkpoint.
    """

    def __init__(
        self,
        patience: int = 1,  # consecutive bad steps tolerated before stopping
        check_weights_every: int = 50,  # also scan all parameters every N batches (0 = never)
        max_abs_loss: float = 1e6,  # |loss| above this counts as divergence too
    ) -> None:
        self.patience, self.check_weights_every, self.max_abs_loss = patience, check_weights_every, max_abs_loss
        self._bad = 0

    def _bad_losses(self, trainer: L.Trainer) -> list[str]:
        bad = []
        for key, value in trainer.callback_metrics.items():
            if not key.startswith("train/") or "loss" not in key or value.numel() != 1:
                continue
            v = float(value)
            if not math.isfinite(v) or abs(v) > self.max_abs_loss:
                bad.append(f"{key}={v}")
        return bad

    @staticmethod
    def _bad_weights(pl_module: L.LightningModule) -> list[str]:
        return [name for name, p in pl_module.named_parameters() if not torch.isfinite(p).all()][:3]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bad = self._bad_losses(trainer)
        if self.check_weights_every and (batch_idx + 1) % self.check_weights_every == 0:
            bad += [f"non-finite weights in {n}" for n in self._bad_weights(pl_module)]
        self._bad = self._bad + 1 if bad else 0
        if self._bad >= self.patience:
            ckpt = last_checkpoint(trainer)
            kept = f"last good checkpoint: {ckpt}" if ckpt else "no checkpoint was written before it"
            raise TrainingDiverged(
                f"training diverged at epoch {trainer.current_epoch}, batch {batch_idx}: {', '.join(bad)}; {kept}; "
                "lower model.lr or use trainer.precision=32-true"
            )
