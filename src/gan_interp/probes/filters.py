"""First-layer discriminator filters: the pixel patterns D's first convolution responds to.

:func:`filter_images` turns a Conv2d weight ``[out, in, kh, kw]`` into displayable tiles: RGB
filters (``in == 3``) as colour patches, others channel by channel in gray, each filter min-max
normalised on its own. :func:`filter_stats` reports per-filter norms and how much of each RGB
filter's energy is colour-neutral (the same pattern in R, G and B: an edge/luminance detector)
versus colour-opponent - the "Sobel-like filters early in training" question of the xAI proposal.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gan_interp.probes import figures
from gan_interp.probes.context import ProbeContext
from gan_interp.probes.registry import register_probe


def filter_images(weight: Tensor, max_filters: int = 64) -> Tensor:
    """``[out, in, kh, kw]`` -> tiles ``[m, 3, kh, kw]`` in ``[0, 1]`` (RGB or per-input-channel gray)."""
    w = weight.detach().float().cpu()[:max_filters]
    if w.shape[1] != 3:
        w = w.reshape(-1, 1, *w.shape[2:])[:max_filters]
    flat = w.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    tiles = ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(w)
    return figures.to_rgb(tiles)


def filter_stats(weight: Tensor) -> dict[str, list[float]]:
    """Per filter: L2 norm and (RGB only) the share of energy in the colour-neutral component."""
    w = weight.detach().float().cpu()
    stats = {"norm": w.flatten(1).norm(dim=1).tolist()}
    if w.shape[1] == 3:
        neutral = w.mean(1, keepdim=True).expand_as(w)
        stats["neutral_share"] = (
            neutral.flatten(1).pow(2).sum(1) / w.flatten(1).pow(2).sum(1).clamp_min(1e-12)
        ).tolist()
    return stats


@register_probe("filters", requires=("input_conv",))
def filters_probe(
    ctx: ProbeContext,
    max_filters: int = 64,  # filters shown
    tile: int = 16,  # display side of each filter (nearest upscaling)
) -> dict:
    """Grid of D's first-layer filters plus per-filter norms / colour-neutral share."""
    conv, out = ctx.model.discriminator_input_conv(), ctx.out
    tiles = figures.upscale(filter_images(conv.weight, max_filters), tile)
    out.image(
        "first_layer",
        figures.image_grid(tiles, nrow=8, unit=True, pad_value=0.5),
        caption=f"D first conv {tuple(conv.weight.shape)}",
    )
    stats = filter_stats(conv.weight)
    summary = {"weight_shape": list(conv.weight.shape), "mean_norm": float(torch.tensor(stats["norm"]).mean())}
    if "neutral_share" in stats:
        summary["mean_neutral_share"] = float(torch.tensor(stats["neutral_share"]).mean())
    out.json("summary", summary | {"per_filter": stats})
    return summary
