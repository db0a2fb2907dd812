"""Make every training step a function of (seed, step) so a resumed run repeats an uninterrupted one.

Before each training batch the global RNGs (torch, numpy, random) are re-seeded from the run's seed
and ``trainer.global_step``. Latents, noise inputs, gradient-penalty interpolation weights and
anything else a model draws inside a step then no longer depend on what ran before (sample grids,
probes, validation), nor on whether the process was restarted from a checkpoint. Together with the
datamodule's (seed, epoch)-seeded sampler that can skip consumed batches, resuming from a
mid-epoch ``last.ckpt`` reproduces the uninterrupted run.
"""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch


def step_seed(base_seed: int, global_step: int) -> int:
    """A distinct 63-bit seed for every (run seed, optimizer step)."""
    return (int(base_seed) * 1_000_003 + int(global_step) * 7_919 + 1) % (2**63 - 1)


class StepSeeder(L.Callback):
    """Re-seed torch/numpy/random at the start of every training batch (cost: microseconds)."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed  # None: the seed seed_everything set (torch.initial_seed() at fit start)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.seed is None:
            self.seed = torch.initial_seed()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        seed = step_seed(self.seed, trainer.global_step)
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
