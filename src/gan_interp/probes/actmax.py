"""Activation maximisation of a discriminator unit (layer + channel).

Two parametrisations of the input:

* pixel space (:func:`pixel_actmax`) - optimise the image itself with Adam, with the usual
  regularisers: random jitter (roll by up to ``jitter`` px each step), total variation and an L2
  penalty, clamped to ``[-1, 1]``; the activation is measured in units of the layer's std;
* generator prior (:func:`prior_actmax`) - optimise ``z`` of a trained generator so the unit is
  maximal on ``G(z)`` (the k-GAN thesis's "prior network" idea with the GAN's own generator as the
  prior); ``z`` is projected back onto the sphere of radius ``sqrt(d)`` where the Gaussian prior
  has its mass.

Only the input is optimised: parameters are frozen and gradients are taken with
``torch.autograd.grad``, so no parameter ``.grad`` is touched. Both report the unit's activation
before and after ("reached") for every channel.

On an ensemble (k-GAN) the critic never changes during an optimisation: each row keeps the critic
of its start image's cell (and, through the prior, the generator its start latent routes to) for
every step (``member`` of ``pixel``/``prior`` in the summary); ``per_member: true`` runs the probe
on each member's own critic and generator as well.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from gan_interp.capture import discriminator_shapes, last_feature_layer, run_capturing
from gan_interp.probes import figures
from gan_interp.probes.context import ProbeContext
from gan_interp.probes.gradients import frozen_parameters
from gan_interp.probes.latents import fixed_z, pinned_critic, pinned_generate, pinned_members, seeded
from gan_interp.probes.registry import register_probe

Objective = Callable[[Tensor], Tensor]  # images [n, C, H, W] -> activation [n] (row i: its own unit)


def unit_objective(forward: Callable[[Tensor], object], layer: nn.Module, channels: list[int]) -> Objective:
    """Mean activation of ``channels[i]`` of ``layer`` for input row ``i`` while running ``forward``."""
    idx = torch.as_tensor(channels, dtype=torch.long)

    def objective(x: Tensor) -> Tensor:
        act = run_capturing({"unit": layer}, lambda: forward(x), stop_early=True, detach=False)["unit"]
        picked = act[torch.arange(act.shape[0], device=act.device), idx.to(act.device)]
        return picked.reshape(act.shape[0], -1).mean(1)

    return objective


def layer_scale(forward: Callable[[Tensor], object], layer: nn.Module, x: Tensor) -> float:
    """Standard deviation of ``layer``'s output on ``x`` (all channels): the unit of the objective."""
    with torch.no_grad():
        act = run_capturing({"l": layer}, lambda: forward(x))["l"].float()
    scale = float(act.std(correction=0)) if act.numel() > 1 else float(act.abs().mean())
    return scale if math.isfinite(scale) and scale > 1e-12 else 1.0


def total_variation(x: Tensor) -> Tensor:
    """Mean absolute difference of neighbouring pixels, per image ``[n]``."""
    dh = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    dw = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    return dh + dw


def pixel_actmax(
    objective: Objective,
    x0: Tensor,  # start images [n, C, H, W] in [-1, 1]
    steps: int = 30,
    lr: float = 0.05,  # Adam step size (pixel units)
    jitter: int = 2,  # random roll of up to this many pixels per step (0 = off)
    tv_weight: float = 0.1,  # total-variation penalty
    l2_weight: float = 0.01,  # L2 penalty on the pixels
    generator: torch.Generator | None = None,  # jitter randomness
    act_scale: float = 1.0,  # the objective is divided by this (e.g. layer_scale) before the penalties
) -> tuple[Tensor, Tensor, Tensor, list[float]]:
    """Optimise pixels to maximise ``objective``: ``(images, start act [n], end act [n], mean-act history)``.

    The loss is ``-act / act_scale + tv_weight * TV + l2_weight * mean(x^2)`` per image, so with
    ``act_scale`` = the layer's activation std the penalty weights mean the same at any stage of
    training (early discriminators have tiny activations).
    """
    x = x0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    history: list[float] = []
    with torch.enable_grad():
        start = objective(x).detach()
        for _ in range(steps):
            xi = x
            if jitter > 0:
                dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=generator))
                xi = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
            act = objective(xi)
            loss = (
                -act.sum() / act_scale
                + tv_weight * total_variation(x).sum()
                + l2_weight * x.pow(2).flatten(1).mean(1).sum()
            )
            (grad,) = torch.autograd.grad(loss, x)
            x.grad = grad
            opt.step()
            with torch.no_grad():
                x.clamp_(-1, 1)
            history.append(act.detach().mean().item())
        end = objective(x).detach()
    return x.detach(), start, end, history


def prior_actmax(
    objective: Objective,
    generate: Callable[[Tensor], Tensor],  # z -> images
    z0: Tensor,  # start latents [n, d]
    steps: int = 30,
    lr: float = 0.05,
    project: bool = True,  # keep |z| = sqrt(d) (the Gaussian shell)
) -> tuple[Tensor, Tensor, Tensor, Tensor, list[float]]:
    """Optimise ``z`` so ``objective(generate(z))`` is maximal: ``(z, images, start [n], end [n], history)``."""
    z = z0.detach().clone().requires_grad_(True)
    radius = math.sqrt(z.shape[1])
    opt = torch.optim.Adam([z], lr=lr)
    history: list[float] = []
    with torch.enable_grad():
        start = objective(generate(z)).detach()
        for _ in range(steps):
            act = objective(generate(z))
            (grad,) = torch.autograd.grad(-act.sum(), z)
            z.grad = grad
            opt.step()
            if project:
                with torch.no_grad():
                    z.mul_(radius / z.norm(dim=1, keepdim=True).clamp_min(1e-12))
            history.append(act.detach().mean().item())
        images = generate(z).detach()
        end = objective(images).detach()
    return z.detach(), images, start, end, history


def _members(model, members) -> dict:
    """``{"member": [critic of every row]}`` on an ensemble (``members()`` gives them), else ``{}``."""
    return {"member": members().tolist()} if getattr(model, "n_members", 0) else {}


@register_probe("actmax", requires=("discriminator_layers",))
def actmax_probe(
    ctx: ProbeContext,
    layer: str | None = None,  # discriminator layer name (None = the last one with a feature map)
    channels: int | list[int] = 4,  # channel ids, or k = channels 0..k-1 (one image per channel)
    steps: int = 30,  # optimisation steps (both parametrisations)
    lr: float = 0.05,  # pixel-space Adam step
    prior_lr: float = 0.05,  # z-space Adam step
    jitter: int = 2,
    tv_weight: float = 0.1,
    l2_weight: float = 0.01,
    init_std: float = 0.1,  # pixel-space start: N(0, init_std^2) noise
    prior: bool = True,  # also optimise through the generator
) -> dict:
    """Maximise D units in pixel space and through G; report the activation reached per channel."""
    model, out, seed = ctx.model, ctx.out, ctx.seed
    layers = model.discriminator_layers()
    name = layer or last_feature_layer(model)
    if name not in layers:
        raise ValueError(f"actmax layer {name!r} is not a discriminator layer; choose from {', '.join(layers)}")
    shape = discriminator_shapes(model)[name]
    n_channels = shape[1] if len(shape) > 1 else 1
    chans = (
        list(range(min(int(channels), n_channels)))
        if isinstance(channels, int)
        else [int(c) % n_channels for c in channels]
    )
    g = seeded(seed)
    x0 = (
        (init_std * torch.randn((len(chans), model.channels, model.resolution, model.resolution), generator=g))
        .clamp(-1, 1)
        .to(model.device)
    )
    summary: dict = {"layer": name, "channels": chans, "steps": steps}  # activations in raw units
    rows = []
    with frozen_parameters(model):
        critic = pinned_critic(model, x0)  # ensembles: the start image's critic for every step
        objective = unit_objective(critic, layers[name], chans)
        scale = layer_scale(critic, layers[name], x0)
        x, start, end, hist = pixel_actmax(objective, x0, steps, lr, jitter, tv_weight, l2_weight, g, act_scale=scale)
        rows.append(x)
        summary["pixel"] = {"start": start.tolist(), "reached": end.tolist(), "history": hist}
        summary["pixel"] |= _members(model, lambda: model.route_images(x0))
        if prior:
            z0 = fixed_z(model, len(chans), seed)
            generate = pinned_generate(model, pinned_members(model, z0))  # ensembles: z0's generator throughout
            with torch.no_grad():
                start_images = generate(z0)
            prior_objective = unit_objective(pinned_critic(model, start_images), layers[name], chans)
            _, imgs, pstart, pend, phist = prior_actmax(prior_objective, generate, z0, steps, prior_lr)
            rows += [start_images, imgs]
            summary["prior"] = {"start": pstart.tolist(), "reached": pend.tolist(), "history": phist}
            summary["prior"] |= _members(model, lambda: model.route_images(start_images))
    grid = figures.image_grid(torch.cat([r.detach().cpu() for r in rows]), nrow=len(chans))
    caption = f"D {name} channels {chans}; rows: pixel space" + ("; G(z) start; G(z) maximised" if prior else "")
    out.image("units", grid, caption=caption)
    table = [[c, "pixel", summary["pixel"]["start"][i], summary["pixel"]["reached"][i]] for i, c in enumerate(chans)]
    if prior:
        table += [
            [c, "prior", summary["prior"]["start"][i], summary["prior"]["reached"][i]] for i, c in enumerate(chans)
        ]
    out.table("reached", ["channel", "parametrisation", "start", "reached"], table)
    out.json("summary", summary)
    return summary
