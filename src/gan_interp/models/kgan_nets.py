"""Networks of one k-GAN member and the routed (per-sample member) forward pass.

Two sizes (``model.arch``):

* ``thesis`` - the small WGAN-GP nets of the k-GAN thesis (seed document 003, section 2.1.1):
  generator = linear + 3 transposed convs, critic = 2 convs + linear;
* ``dcgan`` - DCGAN-sized nets (Radford et al.): the generator of :mod:`gan_interp.models.dcgan`
  (same layout, built here as named stages) and a DCGAN critic *without* batch norm, so the
  WGAN-GP gradient penalty of every sample depends on that sample only.

Every net is a :class:`StagedNet`: an ordered ``ModuleDict`` of stages. :func:`routed_forward`
runs several members' stages on the rows routed to each of them and passes the re-assembled
full batch through one tap (``nn.Identity``) per stage, so a forward hook on a tap sees
``[n, ...]`` activations aligned with the batch and a hook that edits them (ablation) acts.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gan_interp.errors import ConfigError
from gan_interp.models.base import init_dcgan_weights

ARCHES = ("thesis", "dcgan")


class StagedNet(nn.Module):
    """Sequential stages with names (``fc``, ``block0``, ...); the output of the last is returned."""

    def __init__(self, stages: dict[str, nn.Module]) -> None:
        super().__init__()
        self.stages = nn.ModuleDict(stages)

    def forward(self, x: Tensor) -> Tensor:
        for stage in self.stages.values():
            x = stage(x)
        return x


def _check_arch(arch: str) -> None:
    if arch not in ARCHES:
        raise ConfigError(f"model.arch={arch!r} is unknown; use one of {', '.join(ARCHES)}")


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True))


def make_generator(
    arch: str,  # 'thesis' or 'dcgan'
    latent_dim: int,  # size of z
    ngf: int,  # width unit (thesis: first feature map has 4*ngf channels)
    channels: int,  # output image channels
    resolution: int,  # one of KGAN.supported_resolutions (checked by the model)
) -> StagedNet:
    """Generator ``[n, latent_dim] -> [n, channels, resolution, resolution]`` in [-1, 1]."""
    _check_arch(arch)
    if arch == "thesis":  # linear -> s x s (s = res/8), then 3 transposed convs doubling to res
        s, c0 = resolution // 8, 4 * ngf
        fc = nn.Sequential(
            nn.Linear(latent_dim, c0 * s * s, bias=False),
            nn.Unflatten(1, (c0, s, s)),
            nn.BatchNorm2d(c0),
            nn.ReLU(True),
        )
        stages = {"fc": fc, "block0": _up(c0, c0 // 2), "block1": _up(c0 // 2, c0 // 4)}
        stages["to_image"] = nn.Sequential(nn.ConvTranspose2d(c0 // 4, channels, 4, 2, 1), nn.Tanh())
        return StagedNet(stages)
    n = int(math.log2(resolution)) - 2  # DCGAN: z -> 4x4 -> doublings
    widths = [ngf * 2 ** (n - 1 - i) for i in range(n)]
    stages = {
        "block0": nn.Sequential(
            nn.Unflatten(1, (latent_dim, 1, 1)),
            nn.ConvTranspose2d(latent_dim, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        )
    }
    for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        stages[f"block{i}"] = _up(c_in, c_out)
    stages["to_image"] = nn.Sequential(nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh())
    return StagedNet(stages)


def make_critic(
    arch: str,  # 'thesis' or 'dcgan'
    ndf: int,  # width of the first conv
    channels: int,  # input image channels
    resolution: int,  # one of KGAN.supported_resolutions (checked by the model)
) -> StagedNet:
    """WGAN critic ``[n, channels, res, res] -> [n, 1]`` raw scores; no batch statistics anywhere."""
    _check_arch(arch)
    if arch == "thesis":  # 2 strided convs, then one linear layer
        side = resolution // 4
        return StagedNet(
            {
                "block0": nn.Sequential(nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)),
                "block1": nn.Sequential(nn.Conv2d(ndf, 2 * ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)),
                "to_score": nn.Sequential(nn.Flatten(1), nn.Linear(2 * ndf * side * side, 1)),
            }
        )
    n = int(math.log2(resolution)) - 2
    widths = [ndf * 2**i for i in range(n)]
    stages = {"block0": nn.Sequential(nn.Conv2d(channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True))}
    for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        stages[f"block{i}"] = nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2, True))
    stages["to_score"] = nn.Sequential(nn.Conv2d(widths[-1], 1, 4, 1, 0), nn.Flatten(1))
    return StagedNet(stages)


class Member(nn.Module):
    """One generator/critic pair of the ensemble."""

    def __init__(self, arch: str, latent_dim: int, ngf: int, ndf: int, channels: int, resolution: int) -> None:
        super().__init__()
        self.generator = make_generator(arch, latent_dim, ngf, channels, resolution)
        self.discriminator = make_critic(arch, ndf, channels, resolution)
        self.apply(init_dcgan_weights)

    def critic_scores(self, x: Tensor) -> Tensor:
        """Raw critic scores ``[n]``."""
        return self.discriminator(x).flatten()


def routed_forward(nets: list[StagedNet], taps: nn.ModuleDict, x: Tensor, member: Tensor) -> Tensor:
    """Row ``i`` of ``x`` goes through ``nets[member[i]]``, stage by stage, full batch through ``taps``.

    Every stage runs once per member present (on its rows only), so per-member batch statistics
    (train-mode batch norm) and costs match training that member alone.
    """
    present = torch.unique(member).tolist()
    if len(present) == 1:  # fast path: one member, no gather/scatter
        h = x
        for name, stage in nets[present[0]].stages.items():
            h = taps[name](stage(h))
        return h
    rows = [torch.nonzero(member == j).flatten() for j in present]
    inverse = torch.argsort(torch.cat(rows))
    parts = [x[r] for r in rows]
    for name in nets[0].stages:
        outs = [nets[j].stages[name](p) for j, p in zip(present, parts)]
        h = taps[name](torch.cat(outs)[inverse])
        parts = [h[r] for r in rows]
    return h


__all__ = ["ARCHES", "Member", "StagedNet", "make_critic", "make_generator", "routed_forward"]
