"""Networks of the k-GAN members: all k members as one grouped net, per-member views, the routed forward.

Two sizes (``model.arch``):

* ``thesis`` - the small WGAN-GP nets of the k-GAN thesis (seed document 003, section 2.1.1):
  generator = linear + 3 transposed convs, critic = 2 convs + linear;
* ``dcgan`` - DCGAN-sized nets (Radford et al.): the generator of :mod:`gan_interp.models.dcgan`
  (same layout, built here as named stages) and a DCGAN critic *without* batch norm, so the
  WGAN-GP gradient penalty of every sample depends on that sample only.

**One computation for k members (grouped layout).** ``make_generator(..., groups=k)`` builds the
k members' generators as *one* net: every layer is k times wider and split into k independent
groups (``Conv2d``/``ConvTranspose2d`` with ``groups=k``, ``BatchNorm2d`` over ``k * C`` channels,
so each member keeps its own batch statistics, and :class:`GroupedLinear` for the linear layers).
Tensors are member-major: a latent batch is ``[n, k * latent_dim]`` (member j's z in columns
``j*d:(j+1)*d``), images ``[n, k * C, H, W]`` (member j's image in channels ``j*C:(j+1)*C``) and
critic scores ``[n, k]``. The groups never mix, so one grouped step is exactly k member steps
(the same gradients, per-member batch norm), without a Python loop. ``groups=1`` is one plain net.

Why grouped convolutions and not ``torch.func`` (``stack_module_state`` + ``functional_call`` +
``vmap``): both work - ``vmap`` also runs the WGAN-GP double backward and updates per-member
batch-norm statistics - but ``vmap`` lowers a batched convolution to this same grouped convolution
and adds a layout copy ``[k, n, C, H, W] <-> [n, k*C, H, W]`` around every layer (measured slower
on CPU: ``benchmarks/bench_kgan.py``), hides activations from forward hooks (they see batched
tensors) and needs a functional training step. The grouped nets are ordinary modules.

**Per-member views.** :func:`member_views` builds, for member j, plain ``groups=1`` nets whose
parameters and buffers *alias* member j's slice of the grouped tensors (same storage, no copy, no
gradient): the optimizer's in-place updates are visible at once, and probes hook a view's stages
as ordinary modules. :func:`routed_forward` runs several views' stages on the rows routed to each
and passes the re-assembled full batch through one tap (``nn.Identity``) per stage, so a forward
hook on a tap sees ``[n, ...]`` activations aligned with the batch and a hook that edits them
(ablation) acts.
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


class GroupedLinear(nn.Module):
    """``groups`` independent linear layers on member-major features: ``[n, g * in] -> [n, g * out]``."""

    def __init__(
        self,
        groups: int,  # number of independent layers (k-GAN members)
        in_features: int,  # input features of one group
        out_features: int,  # output features of one group
        bias: bool = True,  # one bias vector per group
    ) -> None:
        super().__init__()
        self.groups, self.in_features, self.out_features = groups, in_features, out_features
        self.weight = nn.Parameter(torch.empty(groups, out_features, in_features))  # [g, out, in]
        self.bias = nn.Parameter(torch.zeros(groups, out_features)) if bias else None  # [g, out]
        nn.init.normal_(self.weight, 0.0, 0.02)

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        h = torch.einsum("ngi,goi->ngo", x.reshape(n, self.groups, self.in_features), self.weight)
        if self.bias is not None:
            h = h + self.bias
        return h.reshape(n, self.groups * self.out_features)


def _check_arch(arch: str) -> None:
    if arch not in ARCHES:
        raise ConfigError(f"model.arch={arch!r} is unknown; use one of {', '.join(ARCHES)}")


def _linear(groups: int, c_in: int, c_out: int, bias: bool = True) -> nn.Module:
    return nn.Linear(c_in, c_out, bias=bias) if groups == 1 else GroupedLinear(groups, c_in, c_out, bias=bias)


def _up(g: int, c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(g * c_in, g * c_out, 4, 2, 1, bias=False, groups=g), nn.BatchNorm2d(g * c_out), nn.ReLU(True)
    )


def make_generator(
    arch: str,  # 'thesis' or 'dcgan'
    latent_dim: int,  # size of one member's z
    ngf: int,  # width unit (thesis: first feature map has 4*ngf channels)
    channels: int,  # output image channels (of one member)
    resolution: int,  # one of KGAN.supported_resolutions (checked by the model)
    groups: int = 1,  # members side by side (grouped layout, see the module docstring)
) -> StagedNet:
    """Generator ``[n, g * latent_dim] -> [n, g * channels, resolution, resolution]`` in [-1, 1]."""
    _check_arch(arch)
    g = int(groups)
    if arch == "thesis":  # linear -> s x s (s = res/8), then 3 transposed convs doubling to res
        s, c0 = resolution // 8, 4 * ngf
        fc = nn.Sequential(
            _linear(g, latent_dim, c0 * s * s, bias=False),
            nn.Unflatten(1, (g * c0, s, s)),
            nn.BatchNorm2d(g * c0),
            nn.ReLU(True),
        )
        stages = {"fc": fc, "block0": _up(g, c0, c0 // 2), "block1": _up(g, c0 // 2, c0 // 4)}
        to_image = nn.ConvTranspose2d(g * (c0 // 4), g * channels, 4, 2, 1, groups=g)
        stages["to_image"] = nn.Sequential(to_image, nn.Tanh())
        return StagedNet(stages)
    n = int(math.log2(resolution)) - 2  # DCGAN: z -> 4x4 -> doublings
    widths = [ngf * 2 ** (n - 1 - i) for i in range(n)]
    stages = {
        "block0": nn.Sequential(
            nn.Unflatten(1, (g * latent_dim, 1, 1)),
            nn.ConvTranspose2d(g * latent_dim, g * widths[0], 4, 1, 0, bias=False, groups=g),
            nn.BatchNorm2d(g * widths[0]),
            nn.ReLU(True),
        )
    }
    for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        stages[f"block{i}"] = _up(g, c_in, c_out)
    to_image = nn.ConvTranspose2d(g * widths[-1], g * channels, 4, 2, 1, bias=False, groups=g)
    stages["to_image"] = nn.Sequential(to_image, nn.Tanh())
    return StagedNet(stages)


def _down(g: int, c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(g * c_in, g * c_out, 4, 2, 1, groups=g), nn.LeakyReLU(0.2, True))


def make_critic(
    arch: str,  # 'thesis' or 'dcgan'
    ndf: int,  # width of the first conv
    channels: int,  # input image channels (of one member)
    resolution: int,  # one of KGAN.supported_resolutions (checked by the model)
    groups: int = 1,  # members side by side (grouped layout, see the module docstring)
) -> StagedNet:
    """WGAN critic ``[n, g * channels, res, res] -> [n, g]`` raw scores; no batch statistics anywhere."""
    _check_arch(arch)
    g = int(groups)
    if arch == "thesis":  # 2 strided convs, then one linear layer
        side = resolution // 4
        return StagedNet(
            {
                "block0": _down(g, channels, ndf),
                "block1": _down(g, ndf, 2 * ndf),
                "to_score": nn.Sequential(nn.Flatten(1), _linear(g, 2 * ndf * side * side, 1)),
            }
        )
    n = int(math.log2(resolution)) - 2
    widths = [ndf * 2**i for i in range(n)]
    stages = {"block0": _down(g, channels, widths[0])}
    for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        stages[f"block{i}"] = _down(g, c_in, c_out)
    stages["to_score"] = nn.Sequential(nn.Conv2d(g * widths[-1], g, 4, 1, 0, groups=g), nn.Flatten(1))
    return StagedNet(stages)


def init_member_weights(module: nn.Module) -> None:
    """Radford et al. init (:func:`init_dcgan_weights`) for every layer, grouped linear layers included."""
    init_dcgan_weights(module)
    if isinstance(module, GroupedLinear):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Member(nn.Module):
    """One generator/critic pair (plain nets; in a k-GAN, views of the grouped nets)."""

    def __init__(self, generator: StagedNet, discriminator: StagedNet) -> None:
        super().__init__()
        self.generator, self.discriminator = generator, discriminator

    def critic_scores(self, x: Tensor) -> Tensor:
        """Raw critic scores ``[n]``."""
        return self.discriminator(x).flatten()


def group_slice(grouped: nn.Module, tensor: Tensor, groups: int, j: int) -> Tensor:
    """Member ``j``'s part of a grouped layer's parameter/buffer (scalars, e.g. batch counters, are shared)."""
    if tensor.dim() == 0:
        return tensor.detach()
    if isinstance(grouped, GroupedLinear):
        return tensor.detach()[j]
    return tensor.detach().chunk(groups, dim=0)[j]


def alias_view(grouped: StagedNet, plain: StagedNet, groups: int, j: int) -> StagedNet:
    """Make ``plain`` (a ``groups=1`` net of the same arch) use member ``j``'s slices of ``grouped``, in place.

    Conv weights are ``[g*out, in, ...]``, transposed-conv weights ``[g*in, out, ...]``, batch-norm
    tensors ``[g*C]`` and grouped linear ones ``[g, ...]``: member j's part is a contiguous slice
    along dim 0 in every case, so the aliases share storage with the grouped tensors.
    """
    for (_, g_mod), (_, p_mod) in zip(grouped.named_modules(), plain.named_modules(), strict=True):
        for name, tensor in list(g_mod.named_parameters(recurse=False)):
            part = group_slice(g_mod, tensor, groups, j)
            p_mod._parameters[name] = nn.Parameter(part, requires_grad=False)
        for name, tensor in list(g_mod.named_buffers(recurse=False)):
            p_mod._buffers[name] = group_slice(g_mod, tensor, groups, j)
    return plain


def member_views(
    generators: StagedNet,  # grouped generator (groups = k)
    critics: StagedNet,  # grouped critic (groups = k)
    arch: str,
    latent_dim: int,
    ngf: int,
    ndf: int,
    channels: int,
    resolution: int,
    k: int,
) -> list[Member]:
    """The k members as plain nets aliasing the grouped ones (see :func:`alias_view`)."""
    views = []
    for j in range(k):
        g = alias_view(generators, make_generator(arch, latent_dim, ngf, channels, resolution), k, j)
        d = alias_view(critics, make_critic(arch, ndf, channels, resolution), k, j)
        views.append(Member(g, d))
    return views


def regroup_member_state(
    state_dict: dict[str, Tensor],  # modified in place
    old_prefix: str,  # e.g. "members." : old keys are <old_prefix><j>.<part>.<key>
    nets: dict[str, tuple[str, StagedNet]],  # part ("generator") -> (new key prefix, the grouped net)
    k: int,  # members
) -> None:
    """Per-member weights (the layout before the grouped nets) -> the grouped nets' keys, in place.

    The inverse of :func:`alias_view`: member tensors are concatenated along dim 0 (stacked for
    :class:`GroupedLinear`); scalar buffers (batch-norm counters) take member 0's value.
    """
    if not any(key.startswith(old_prefix) for key in state_dict):
        return
    for part, (new_prefix, net) in nets.items():
        for key, tensor in net.state_dict().items():
            owner = net.get_submodule(key.rsplit(".", 1)[0]) if "." in key else net
            parts = [state_dict.pop(f"{old_prefix}{j}.{part}.{key}") for j in range(k)]
            if tensor.dim() == 0:
                state_dict[new_prefix + key] = parts[0]
            elif isinstance(owner, GroupedLinear):
                state_dict[new_prefix + key] = torch.stack(parts)
            else:
                state_dict[new_prefix + key] = torch.cat(parts)


def to_grouped(x: Tensor, k: int) -> Tensor:
    """``[k, n, C, H, W]`` (member-first blocks) -> grouped layout ``[n, k*C, H, W]``."""
    return x.transpose(0, 1).reshape(x.shape[1], k * x.shape[2], *x.shape[3:])


def from_grouped(x: Tensor, k: int) -> Tensor:
    """Grouped ``[n, k*C, H, W]`` -> ``[k, n, C, H, W]``."""
    n = x.shape[0]
    return x.reshape(n, k, x.shape[1] // k, *x.shape[2:]).transpose(0, 1)


def routed_forward(nets: list[StagedNet], taps: nn.ModuleDict, x: Tensor, member: Tensor) -> Tensor:
    """Row ``i`` of ``x`` goes through ``nets[member[i]]``, stage by stage, full batch through ``taps``.

    Every stage runs once per member present (on its rows only), so per-member batch statistics
    (train-mode batch norm) and costs match running that member alone.
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


__all__ = [
    "ARCHES",
    "GroupedLinear",
    "Member",
    "StagedNet",
    "alias_view",
    "from_grouped",
    "init_member_weights",
    "make_critic",
    "make_generator",
    "member_views",
    "regroup_member_state",
    "routed_forward",
    "to_grouped",
]
