"""Differentiable augmentation of critic inputs (DiffAugment, Zhao et al. 2020): pure functions.

The same random transform family is applied to real and generated images before the critic, in the
critic's and in the generator's loss, so the generator is not taught to produce augmented images while the
critic cannot memorise a few thousand training images. Every op is differentiable in the images.

Policy: a list of op names (or one comma-separated string), applied in the given order: ``color`` (brightness
+-0.5, saturation x[0, 2], contrast x[0.5, 1.5]), ``translation`` (integer shift up to 1/8 of the side, zero
padding), ``cutout`` (one zeroed square of half the side per image). ``[]`` = no augmentation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_interp.errors import ConfigError

AUGMENT_OPS = ("color", "translation", "cutout")


def parse_policy(policy: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """``"color,translation"`` or ``["color", "translation"]`` -> ``("color", "translation")``.

    One-line error naming an unknown op.
    """
    items = (policy or "").split(",") if isinstance(policy, str) or policy is None else list(policy)
    ops = tuple(str(p).strip() for p in items if str(p).strip())
    for op in ops:
        if op not in AUGMENT_OPS:
            raise ConfigError(f"model.augment: unknown op {op!r}; use a comma-separated subset of {AUGMENT_OPS}")
    return ops


def _rand(x: Tensor, *shape: int) -> Tensor:
    return torch.rand(x.shape[0], *shape, device=x.device, dtype=x.dtype)


def color(x: Tensor) -> Tensor:
    """Random brightness, saturation and contrast per image (images in [-1, 1])."""
    x = x + (_rand(x, 1, 1, 1) - 0.5)
    mean_c = x.mean(dim=1, keepdim=True)
    x = (x - mean_c) * (_rand(x, 1, 1, 1) * 2) + mean_c
    mean_all = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean_all) * (_rand(x, 1, 1, 1) + 0.5) + mean_all


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by a random integer offset up to ``ratio`` of its side; vacated pixels are 0."""
    n, _, h, w = x.shape
    sh, sw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    dy = torch.randint(-sh, sh + 1, (n,), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n,), device=x.device)
    padded = F.pad(x, (sw, sw, sh, sh))
    rows = (torch.arange(h, device=x.device)[None, :] + sh - dy[:, None]).clamp(0, h + 2 * sh - 1)  # [n, h]
    cols = (torch.arange(w, device=x.device)[None, :] + sw - dx[:, None]).clamp(0, w + 2 * sw - 1)  # [n, w]
    idx_n = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]  # [n, h, w, c]
    return out.permute(0, 3, 1, 2)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero one square of ``ratio`` x the side per image, at a random position (may overlap the border)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h, (n, 1, 1), device=x.device) - ch // 2  # square centred anywhere in the image
    left = torch.randint(0, w, (n, 1, 1), device=x.device) - cw // 2
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_OPS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: Tensor, ops: tuple[str, ...]) -> Tensor:
    """Apply ``ops`` (from :func:`parse_policy`) in order; the identity for ``()``."""
    for op in ops:
        x = _OPS[op](x)
    return x.contiguous()
