"""Probe inputs: seeded latents (the same every epoch and run), generation in bounded batches, and
member pinning for ensembles (k-GAN) so an optimisation or traversal never switches members."""

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


def has_members(model) -> bool:
    """Whether ``model`` is an ensemble (``n_members > 0``: k-GAN, with ``route_members``/``route_images``)."""
    return bool(getattr(model, "n_members", 0))


def pinned_members(model, z: Tensor, repeats: int = 1) -> Tensor | None:
    """The member each row of ``z`` is routed to, every row repeated ``repeats`` times; ``None`` without members."""
    if not has_members(model):
        return None
    return model.route_members(z).repeat_interleave(repeats)


def pinned_generate(model, members: Tensor | None):
    """``z -> images``: row i always made by ``members[i]`` (k-GAN), or plain ``model.generate``."""
    return model.generate if members is None else (lambda z: model.generate(z, member=members))


def pinned_critic(model, x0: Tensor):
    """``x -> scores``: row i always scored by the critic of ``x0[i]``'s cell (k-GAN), or plain ``model.critic``.

    An optimisation that moves ``x`` (activation maximisation) keeps its critic: with routing by the
    current image, a row could switch critics between steps.
    """
    if not has_members(model):
        return model.critic
    members = model.route_images(x0)
    return lambda x: model.critic(x, member=members)
