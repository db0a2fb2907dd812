"""Planted generators: controls whose right answer is known, shaped like a ``GANModule`` for the metrics and probes.

Each maps latents to images deterministically (the same ``z`` always gives the same image) and has what
:func:`gan_interp.metrics.runner.evaluate` and the data-only probes (``neighbours``) read: ``latent_dim``,
``resolution``, ``channels``, ``sample_z(n, generator)``, ``generate(z)`` (images in ``[-1, 1]``),
``fixed_latents``/``sample``, ``eval()``/``train()``, ``device`` and empty ``generator_layers()`` /
``discriminator_layers()`` (no networks: probes that need a critic or layers do not apply to them).

* :func:`heldout_sampler` - fresh posters of the data's own procedural stream, never in the data module
  (stream indices from ``source.n`` on): a generator that samples the real distribution exactly. Two-sample
  tests must not flag it; memorisation scores must not flag it.
* :func:`no_orb_sampler` - the same fresh posters rendered with the orb never present
  (``render_posters(orb_probability=0)``): one concept is missing, nothing else changed.
* :func:`memoriser` - training images plus small Gaussian pixel noise: memorisation scores must flag it.

Latent -> image: every row of ``z`` is hashed (its float32 bytes, BLAKE2b) to a 64-bit key; the poster
samplers render stream index ``source.n + key % 2**40`` (distinct posters for distinct latents), the
memoriser returns training image ``key % n_train`` with noise seeded by the key.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gan_interp.data.datamodule import uint8_to_model
from gan_interp.data.sources import SyntheticPosterSource, resize_uint8
from gan_interp.data.synthetic_posters import render_posters
from gan_interp.errors import ConfigError

KEY_SPAN = 2**40  # poster stream indices drawn by the samplers: source.n + key % KEY_SPAN
DEFAULT_NOISE_STD = 0.05  # memoriser pixel noise in [-1, 1] units (~6/255; the posters' own noise is 2-6/255)


def latent_keys(z: Tensor) -> list[int]:
    """One 64-bit key per row of ``z`` (BLAKE2b of its float32 bytes): equal rows, equal keys."""
    rows = z.detach().float().cpu().contiguous().numpy()
    return [int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little") for r in rows]


class PlantedGenerator(nn.Module):
    """Base class: a network-free generator ``z -> image`` with a known right answer (``kind`` names it)."""

    kind = "planted"  # short name used in scorecard rows
    n_members = 0  # not an ensemble

    def __init__(
        self,
        latent_dim: int,  # size of z (any; only its bytes are used)
        resolution: int,  # image side (the data module's)
        channels: int,  # image channels (the data module's)
        fixed_seed: int = 1234,  # seed of fixed_latents (as GANModule)
    ) -> None:
        super().__init__()
        if int(latent_dim) < 1:
            raise ConfigError(f"planted generator latent_dim={latent_dim} must be >= 1")
        self.latent_dim, self.resolution, self.channels = int(latent_dim), int(resolution), int(channels)
        self.fixed_seed = int(fixed_seed)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` standard-normal latents ``[n, latent_dim]``."""
        return torch.randn(n, self.latent_dim, generator=generator)

    def fixed_latents(self, n: int = 64) -> Tensor:
        return self.sample_z(n, generator=torch.Generator().manual_seed(self.fixed_seed))

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> Tensor:
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.generate(self.sample_z(n, generator=g))

    def generate(self, z: Tensor) -> Tensor:
        """Images ``[n, C, R, R]`` in ``[-1, 1]``, one per latent row, the same for the same row."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"{self.kind}: latents must be [n, {self.latent_dim}], got {tuple(z.shape)}")
        if z.shape[0] == 0:
            return torch.empty(0, self.channels, self.resolution, self.resolution)
        return self.images_for_keys(latent_keys(z))

    def images_for_keys(self, keys: list[int]) -> Tensor:
        raise NotImplementedError

    def generator_layers(self) -> dict[str, nn.Module]:
        return {}

    def discriminator_layers(self) -> dict[str, nn.Module]:
        return {}


class PosterStreamSampler(PlantedGenerator):
    """Fresh posters of a procedural stream, from index ``offset`` on (optionally with the orb left out)."""

    def __init__(
        self,
        stream_seed: int,  # the poster stream (the data source's seed: the same distribution)
        offset: int,  # first stream index used (the data source's n: no poster of the data module)
        resolution: int,  # image side
        channels: int,  # image channels (posters are converted as the data cache converts them)
        latent_dim: int = 16,  # size of z
        orb_probability: float | None = None,  # None: the genre's own (held-out sampler); 0: no orb ever
        kind: str = "held-out sampler",  # name in the scorecard rows
    ) -> None:
        super().__init__(latent_dim, resolution, channels)
        self.stream_seed, self.offset, self.orb_probability, self.kind = (
            int(stream_seed),
            int(offset),
            orb_probability,
            kind,
        )

    def stream_indices(self, keys: list[int]) -> list[int]:
        """The poster stream index rendered for each key."""
        return [self.offset + k % KEY_SPAN for k in keys]

    def images_for_keys(self, keys: list[int]) -> Tensor:
        res = self.resolution if self.resolution in (32, 64, 128) else 128
        posters = [
            render_posters(1, res, self.stream_seed, start=i, orb_probability=self.orb_probability).images
            for i in self.stream_indices(keys)
        ]
        return uint8_to_model(torch.from_numpy(resize_uint8(np.concatenate(posters), self.resolution, self.channels)))


class Memoriser(PlantedGenerator):
    """Training images plus small Gaussian noise: image ``key % n_train`` of the train split."""

    kind = "memoriser"

    def __init__(
        self,
        train_images: Any,  # the training split: a dataset with __getitems__ (GANDataModule.dataset("train"))
        resolution: int,  # image side
        channels: int,  # image channels
        latent_dim: int = 16,  # size of z
        noise_std: float = DEFAULT_NOISE_STD,  # pixel noise in [-1, 1] units (0: exact copies)
    ) -> None:
        super().__init__(latent_dim, resolution, channels)
        if len(train_images) < 1:
            raise ConfigError("memoriser needs a non-empty training split")
        if float(noise_std) < 0:
            raise ConfigError(f"memoriser noise_std={noise_std} must be >= 0")
        self.train_images, self.noise_std = train_images, float(noise_std)

    def train_positions(self, keys: list[int]) -> list[int]:
        """The training-split position copied for each key."""
        return [k % len(self.train_images) for k in keys]

    def images_for_keys(self, keys: list[int]) -> Tensor:
        x = self.train_images.__getitems__(self.train_positions(keys))["image"]
        noise = torch.stack(
            [torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(k % 2**63)) for k in keys]
        )
        return (x + self.noise_std * noise).clamp(-1, 1)


def _poster_source(dm: Any) -> SyntheticPosterSource:
    source = getattr(dm, "source", None)
    if not isinstance(source, SyntheticPosterSource):
        name = getattr(source, "name", type(source).__name__)
        raise ConfigError(
            f"planted poster samplers need data=synthetic_posters (the procedural stream), got data source {name!r}"
        )
    return source


def heldout_sampler(dm: Any, latent_dim: int = 16) -> PosterStreamSampler:
    """Fresh posters of ``dm``'s stream that are in none of its splits: the real distribution, never seen."""
    src = _poster_source(dm)
    return PosterStreamSampler(src.seed, src.n, dm.resolution, dm.channels, latent_dim)


def no_orb_sampler(dm: Any, latent_dim: int = 16) -> PosterStreamSampler:
    """The held-out sampler's posters with the orb left out (concept ``orb`` never present)."""
    src = _poster_source(dm)
    return PosterStreamSampler(src.seed, src.n, dm.resolution, dm.channels, latent_dim, 0.0, "no-orb sampler")


def memoriser(dm: Any, latent_dim: int = 16, noise_std: float = DEFAULT_NOISE_STD) -> Memoriser:
    """Training images of ``dm`` plus ``noise_std`` Gaussian noise."""
    return Memoriser(dm.dataset("train"), dm.resolution, dm.channels, latent_dim, noise_std)
