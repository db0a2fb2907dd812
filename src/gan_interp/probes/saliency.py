"""SmoothGrad saliency of the discriminator/critic (Captum ``NoiseTunnel(Saliency)``).

For an image ``x`` and the critic score ``D(x)``, SmoothGrad averages the input gradient over
``nt_samples`` noisy copies ``x + N(0, stdevs^2)``. With ``absolute=True`` (the default, Captum's
``Saliency(abs=True)``) the attribution is the mean of ``|dD/dx|``; with ``absolute=False`` it is the
signed mean gradient. Known answer: for a linear critic ``D(x) = <w, x>`` the gradient is ``w``
for every noisy copy, so the attribution equals ``|w|`` (or ``w``) exactly, whatever the noise.

The probe attributes the critic on real (first ``n`` training images) and fake (fixed seeded z)
images, shows image / saliency / overlay rows, and, when the data has ground-truth concept masks
(synthetic posters), reports the share of saliency mass falling in each concept next to the
concept's area share (a ratio > 1 means the critic looks at that concept more than its size).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from captum.attr import NoiseTunnel, Saliency
from torch import Tensor

from gan_interp.probes import figures
from gan_interp.probes.context import ProbeContext
from gan_interp.probes.gradients import critic_fn, frozen_parameters
from gan_interp.probes.latents import fixed_z
from gan_interp.probes.registry import register_probe


def smoothgrad(
    forward: Callable[[Tensor], Tensor],  # x [n, ...] -> scores [n]
    x: Tensor,  # inputs [n, C, H, W]
    nt_samples: int = 8,  # noisy copies per input
    stdevs: float = 0.1,  # noise standard deviation (in input units; images span [-1, 1])
    nt_samples_batch_size: int | None = None,  # noisy copies per forward pass (bounds memory)
    absolute: bool = True,  # mean |gradient| (Captum Saliency abs=True) vs signed mean gradient
) -> Tensor:
    """SmoothGrad attributions ``[n, C, H, W]`` of ``forward`` at ``x`` via Captum."""
    tunnel = NoiseTunnel(Saliency(forward))
    with torch.enable_grad():
        attr = tunnel.attribute(
            x.detach().clone().requires_grad_(True),
            nt_type="smoothgrad",
            nt_samples=int(nt_samples),
            nt_samples_batch_size=None if nt_samples_batch_size is None else int(nt_samples_batch_size),
            stdevs=float(stdevs),
            abs=absolute,
        )
    return attr.detach()


def saliency_maps(attr: Tensor) -> Tensor:
    """Per-pixel saliency ``[n, H, W]``: the channel sum of ``|attribution|``."""
    return attr.abs().sum(1)


def concept_shares(maps: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
    """Share of saliency mass and of area per concept: ``maps [n,H,W]``, ``masks bool [n,K,H,W]`` -> ``[K]``,
    ``[K]``."""
    m = masks.float()
    mass = (maps.unsqueeze(1) * m).sum((0, 2, 3)) / maps.sum().clamp_min(1e-12)
    area = m.sum((0, 2, 3)) / (m.shape[0] * m.shape[2] * m.shape[3])
    return mass, area


def _panel(images: Tensor, attr: Tensor, quantile: float) -> tuple[Tensor, Tensor]:
    maps01 = figures.normalize_maps(saliency_maps(attr), quantile)
    imgs01 = figures.to_rgb(figures.to_unit(images))
    rows = torch.cat([imgs01, figures.heatmaps(maps01), figures.overlay(imgs01, maps01)])
    return figures.image_grid(rows, nrow=images.shape[0], unit=True), maps01


@register_probe("saliency")
def saliency_probe(
    ctx: ProbeContext,
    n: int = 8,  # images per kind (real, fake)
    nt_samples: int = 8,  # SmoothGrad noisy copies per image
    stdevs: float = 0.1,  # SmoothGrad noise std (images are in [-1, 1])
    nt_samples_batch_size: int | None = 32,  # noisy copies per forward pass
    absolute: bool = True,  # mean |grad| (True) or signed mean grad
    quantile: float = 0.99,  # display: per-map clipping quantile
    captum_figure: bool = False,  # also render Captum's visualize_image_attr for the first image
) -> dict:
    """SmoothGrad saliency of the critic on real and fake images (image/saliency/overlay grids)."""
    model, datamodule, out = ctx.model, ctx.datamodule, ctx.out
    device = model.device
    inputs: dict[str, Tensor] = {"fake": model.generate(fixed_z(model, n, ctx.seed)).detach()}
    real_masks = None
    if datamodule is not None:
        real, masks = datamodule.images_with_masks("train", n)  # a seeded, class-stratified sample
        if real.numel():
            inputs["real"] = real.to(device)
            if masks is not None and tuple(masks.shape[2:]) == tuple(real.shape[2:]):
                real_masks = torch.from_numpy(masks.copy())
    forward = critic_fn(model)
    summary: dict = {"n": n, "nt_samples": nt_samples, "stdevs": float(stdevs), "absolute": absolute}
    with frozen_parameters(model):
        for kind, x in inputs.items():
            attr = smoothgrad(forward, x, nt_samples, stdevs, nt_samples_batch_size, absolute).cpu()
            grid, _ = _panel(x, attr, quantile)
            out.image(
                kind, grid, caption=f"{kind}: rows = image, SmoothGrad, overlay; columns = inputs 0..{len(x) - 1}"
            )
            maps = saliency_maps(attr)
            with torch.no_grad():
                scores = forward(x).float().cpu()
            h, w = maps.shape[1:]
            cy, cx = slice(h // 4, h - h // 4), slice(w // 4, w - w // 4)
            summary[kind] = {
                "mean_abs_attr": maps.mean().item(),
                "center_mass_share": (maps[:, cy, cx].sum() / maps.sum().clamp_min(1e-12)).item(),
                "critic_scores": scores.tolist(),
            }
            if captum_figure:
                out.image(f"{kind}_captum", figures.captum_overlay_figure(figures.to_unit(x[0]), attr[0], f"{kind} #0"))
            if kind == "real" and real_masks is not None:
                mass, area = concept_shares(maps, real_masks)
                names = list(datamodule.concept_names)
                rows = [
                    [c, mass[i].item(), area[i].item(), (mass[i] / area[i].clamp_min(1e-12)).item()]
                    for i, c in enumerate(names)
                ]
                out.table("real_concept_share", ["concept", "saliency_share", "area_share", "ratio"], rows)
                summary["real"]["concept_ratio"] = {r[0]: r[3] for r in rows}
    out.json("summary", summary)
    return summary
