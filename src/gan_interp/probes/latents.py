"""Probe inputs: seeded latents (the same every epoch and run) and generation in bounded batches."""

from __future__ import annotations

import torch
from torch import Tensor


def seeded(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (reproducible latents on any device)."""
    return torch.Generator().manual_seed(int(seed))


def fixed_z(model, n: int, seed: int) -> Tensor:
    """``n`` latents of ``model`` from a generator seeded with ``seed`` (same every epoch/run)."""
    return model.sample_z(n, generator=seeded(seed))


def generate_batched(model, z: Tensor, batch_size: int = 64) -> Tensor:
    """``model.generate`` in chunks of ``batch_size`` (bounded memory); images on the model's device."""
    return torch.cat([model.generate(z[i : i + batch_size]) for i in range(0, z.shape[0], batch_size)])
