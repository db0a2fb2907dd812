"""The real-vs-real floor of a metric: real training images scored against the held-out reference exactly as a
generator's samples are (same n, features, classifier, seeds), so "FID <= 3x the floor" compares like with like.

:class:`SplitSampler` stands in for a generator: it hands out the images of one split in the data module's
seeded probe order, ignoring the latents. ``real_floor(dm, settings)`` = ``evaluate(SplitSampler(dm, "train"))``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gan_interp.errors import ConfigError
from gan_interp.metrics.runner import MetricsResult, evaluate
from gan_interp.metrics.settings import MetricsSettings


class SplitSampler(nn.Module):
    """Real images of one split, handed out in order as if generated (``generate`` ignores ``z``)."""

    def __init__(
        self,
        datamodule: Any,  # a set-up GANDataModule
        split: str = "train",  # the split whose images are handed out
        n: int | None = None,  # how many (the seeded sample of dm.images); None = the whole split
    ) -> None:
        super().__init__()
        self.register_buffer("pool", datamodule.images(split, n).float())
        self.latent_dim = 1
        self.split = split
        self._next = 0

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, 1, generator=generator).to(self.pool.device)

    def generate(self, z: Tensor) -> Tensor:
        n = z.shape[0]
        if self._next + n > self.pool.shape[0]:
            raise ConfigError(
                f"the {self.split} split has {self.pool.shape[0]} images, fewer than the {self._next + n} requested; "
                "lower metrics.n or draw more data (data.source.n)"
            )
        out = self.pool[self._next : self._next + n]
        self._next += n
        return out


def real_floor(datamodule: Any, settings: MetricsSettings, split: str = "train") -> MetricsResult:
    """Every metric of ``settings`` for ``settings.n`` real ``split`` images against the reference split."""
    if split == settings.real_split:
        raise ConfigError(f"the floor compares two different splits; split={split!r} is the reference split too")
    return evaluate(SplitSampler(datamodule, split, settings.n), datamodule, settings)
