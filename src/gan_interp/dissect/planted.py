"""Planted generators for dissection: units that *are* concept masks, so every reading has a known answer.

* :class:`PlantedPosterGAN` - shows held-out real posters; its layer ``concepts`` has one unit per poster
  concept, equal to that concept's ground-truth mask times a per-sample gain in ``[0.6, 1]`` (and a 5 %
  ramp across the image, so a top-quantile threshold never falls inside a block of equal values). A pixel
  shows the poster only while the unit of the concept it belongs to is on; where that unit is off
  (ablated) it shows what lies beneath: the colours of the concepts painted before it, grown into the
  hole (the background's own pixels, having nothing beneath, take the poster's mean background colour).
  Known answers: the unit of concept ``c`` matches ``c`` as well as the segmenter sees ``c`` (IQR threshold;
  the top-``q`` threshold reaches about ``min(1, q / a)`` for concept area ``a``); ablating it removes the
  segmented ``c`` pixels that really are ``c``.
* :class:`PlantedSceneGAN` - GAN Dissection's door-on-a-wall in miniature: an 8x8 layer ``feat`` with
  units door, wall, sky and an unrelated wave; the image is sky blue above a latent horizon, wall gray
  below, and red where the door unit is on *and* the wall unit is on. Inserting the door units inside a
  region paints the region red exactly where it held wall, never where it held sky (the context table).

Both are :class:`~gan_interp.models.base.GANModule` subclasses with the generator contract the dissection
uses (``generate``, ``sample_z``, ``generator_layers``); their critic is a constant (no training).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_interp.errors import ConfigError
from gan_interp.models.base import GANModule

GAIN_RANGE = (0.6, 1.0)  # per-sample gain of a planted unit (spreads the values a top-quantile threshold cuts)
RAMP = 0.05  # a planted poster unit also rises by up to 5 % across the image, so no two on-pixels tie


def _index(z: Tensor, n: int) -> Tensor:
    """Bank index of each latent: the normal CDF of ``z[:, 0]`` cut into ``n`` equal bins."""
    u = 0.5 * (1 + torch.erf(z[:, 0].float() / math.sqrt(2)))
    return (u * n).long().clamp(0, n - 1)


def _gain(x: Tensor) -> Tensor:
    """Per-sample gain in :data:`GAIN_RANGE` from one latent coordinate ``x [B]``."""
    lo, hi = GAIN_RANGE
    return lo + (hi - lo) * torch.sigmoid(x.float())


class _ConceptUnits(nn.Module):
    """``z -> [B, K, H, W]``: the ground-truth masks of the selected posters times a per-sample gain."""

    def __init__(self, masks: Tensor) -> None:
        super().__init__()
        h, w = masks.shape[-2:]
        ramp = (torch.arange(h)[:, None] / max(h - 1, 1) + torch.arange(w)[None, :] / max(w - 1, 1)) / 2
        self.register_buffer("masks", masks.float())
        self.register_buffer("ramp", 1 + RAMP * ramp)  # breaks ties inside a sample (quantile thresholds)

    def forward(self, z: Tensor) -> Tensor:
        idx = _index(z, self.masks.shape[0]).to(self.masks.device)
        return self.masks[idx] * _gain(z[:, 1]).to(self.masks.device)[:, None, None, None] * self.ramp


def _inpaint(img: Tensor, known: Tensor, steps: int) -> tuple[Tensor, Tensor]:
    """Grow the ``known`` pixels (bool ``[B, 1, H, W]``) outwards, each new pixel the mean colour of its known
    3x3 neighbours, ``steps`` times: ``(colours, filled)``."""
    col, w = img * known, known.float()
    for _ in range(steps):
        if bool((w > 0).all()):
            break
        s = F.avg_pool2d(col, 3, 1, 1, count_include_pad=False)
        n = F.avg_pool2d(w, 3, 1, 1, count_include_pad=False)
        grow = (w == 0) & (n > 0)
        col = torch.where(grow, s / n.clamp_min(1e-8), col)
        w = torch.where(grow, torch.ones_like(w), w)
    return col, w > 0


class PlantedPosterGAN(GANModule):
    """Held-out posters whose layer ``concepts`` holds their concept masks (see module docstring)."""

    supported_resolutions = tuple(2**i for i in range(3, 10))

    def __init__(
        self,
        images: Tensor,  # [N, C, H, W] posters in [-1, 1] (held out: the generator never trained on them)
        masks: Tensor | np.ndarray,  # [N, K, H, W] bool ground-truth concept masks of the same posters
        background: int = 0,  # index of the background concept (the colour ablated pixels take)
    ) -> None:
        masks = torch.as_tensor(np.asarray(masks)) if not isinstance(masks, Tensor) else masks
        if images.shape[0] == 0 or masks.shape[0] != images.shape[0] or masks.shape[-2:] != images.shape[-2:]:
            raise ConfigError(
                f"planted posters need images [N, C, H, W] and masks [N, K, H, W] of the same N > 0 and size, "
                f"got {tuple(images.shape)} and {tuple(masks.shape)}"
            )
        super().__init__(latent_dim=2, resolution=images.shape[-1], channels=images.shape[1])
        masks = masks.bool()
        self.units = _ConceptUnits(masks)
        owner = (masks.long() * torch.arange(1, masks.shape[1] + 1)[None, :, None, None]).argmax(1)  # topmost
        self.register_buffer("images", images.float())
        self.register_buffer("owner", owner)  # [N, H, W] the concept each pixel belongs to
        bg = masks[:, background, None].float()
        fill = (images * bg).sum((2, 3)) / bg.sum((2, 3)).clamp_min(1)  # [N, C] mean background colour
        self.register_buffer("fill", fill)

    def generate(self, z: Tensor) -> Tensor:
        units = self.units(z)
        idx = _index(z, self.images.shape[0]).to(self.images.device)
        img, owner = self.images[idx], self.owner[idx][:, None]  # [B, C, H, W], [B, 1, H, W]
        shown = units.gather(1, owner) > 0  # the pixel's own unit is on
        out = torch.where(shown, img, self.fill[idx][:, :, None, None].expand_as(img))
        for c in owner[~shown].unique().tolist():  # concepts switched off somewhere: paint what lies beneath
            under, ok = _inpaint(img, shown & (owner < c), 2 * max(img.shape[-2:]))
            out = torch.where(~shown & (owner == c) & ok, under, out)
        return out

    def critic(self, x: Tensor) -> Tensor:
        return torch.zeros(x.shape[0], device=x.device)

    def generator_layers(self) -> dict[str, nn.Module]:
        return {"concepts": self.units}


class _SceneUnits(nn.Module):
    """``z -> [B, 4, 8, 8]``: door, wall, sky (times a per-sample gain), wave (see :class:`PlantedSceneGAN`)."""

    side = 8

    def forward(self, z: Tensor) -> Tensor:
        s, b = self.side, z.shape[0]
        rows = torch.arange(s, device=z.device)[None, :, None].expand(b, s, s)
        cols = torch.arange(s, device=z.device)[None, None, :].expand(b, s, s)
        horizon = 2 * (1 + (torch.sigmoid(z[:, 0]) * 3).long().clamp(0, 2))  # 2, 4 or 6 rows of sky
        wall = (rows >= horizon[:, None, None]).float()
        col = 2 * (torch.sigmoid(z[:, 1]) * 4).long().clamp(0, 3)
        door = (rows >= s - 2) & (cols >= col[:, None, None]) & (cols < col[:, None, None] + 2)
        door = door.float() * (z[:, 2] > 0).float()[:, None, None]  # half the scenes have a door
        wave = 0.5 + 0.5 * torch.sin(z[:, 3, None, None] * 2 + cols * 0.9 + rows * 0.4)
        gain = _gain(z[:, 3]).to(z.device)[:, None, None]  # on-values in [0.6, 1]: a spread to threshold
        return torch.stack([door * gain, wall * gain, (1 - wall) * gain, wave], 1)


class PlantedSceneGAN(GANModule):
    """Door-on-a-wall scenes at ``resolution`` px from an 8x8 unit layer ``feat`` (module docstring)."""

    unit_names = ("door", "wall", "sky", "wave")
    colours = {"door": (1.0, -1.0, -1.0), "wall": (0.0, 0.0, 0.0), "sky": (-1.0, -1.0, 1.0)}

    def __init__(self, resolution: int = 32) -> None:
        super().__init__(latent_dim=4, resolution=resolution, channels=3)
        self.feat = _SceneUnits()
        self.anchor = nn.Parameter(torch.zeros(()), requires_grad=False)  # a device anchor

    def generate(self, z: Tensor) -> Tensor:
        u = F.interpolate(self.feat(z), size=(self.resolution,) * 2, mode="nearest")
        door, wall, sky = (u[:, i] > 0.5 for i in range(3))
        out = torch.full((z.shape[0], 3, self.resolution, self.resolution), -1.0, device=z.device)  # black
        for name, where in (("sky", sky), ("wall", wall), ("door", door & wall)):
            colour = torch.tensor(self.colours[name], device=z.device)[None, :, None, None]
            out = torch.where(where[:, None], colour, out)
        return out

    def critic(self, x: Tensor) -> Tensor:
        return torch.zeros(x.shape[0], device=x.device)

    def generator_layers(self) -> dict[str, nn.Module]:
        return {"feat": self.feat}


def planted_posters(datamodule: Any, n: int = 256) -> PlantedPosterGAN:
    """A :class:`PlantedPosterGAN` over ``n`` held-out posters (the test split, else val) of a masked dataset."""
    for split in ("test", "val"):
        images, masks = datamodule.images_with_masks(split, n)
        if masks is None:
            raise ConfigError(f"data {getattr(datamodule, 'name', '?')!r} has no concept masks to plant")
        if len(images):
            names = list(datamodule.concept_names)
            return PlantedPosterGAN(images, masks, names.index("background") if "background" in names else 0)
    raise ConfigError("the data module has no test or val images to plant (set data.test_fraction > 0)")
