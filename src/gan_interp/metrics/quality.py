"""No-reference image quality: sharpness, noise and total variation (per image, streamable).

All measures work on the luminance of images in ``[-1, 1]`` rescaled to ``[0, 1]``:

* ``laplacian_var`` - variance of the 3x3 Laplacian response over the valid interior
  (sharpness: blurry images have low values, a constant image has 0);
* ``noise`` - Immerkaer's (1996) fast noise standard deviation estimate
  ``sigma = sqrt(pi/2) / (6 (W-2)(H-2)) * sum |I * M|`` with ``M = [[1,-2,1],[-2,4,-2],[1,-2,1]]``
  (``M`` annihilates locally linear structure, so for i.i.d. Gaussian noise the estimate is
  unbiased for sigma);
* ``tv`` - anisotropic total variation per pixel: ``mean |dI/dx| + mean |dI/dy|``.

:class:`QualityAccumulator` keeps running sums only, so any number of images streams through.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
IMMERKAER = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
LUMA = (0.299, 0.587, 0.114)
MEASURES = ("laplacian_var", "noise", "tv")


def luminance01(images: Tensor) -> Tensor:
    """``[n, C, H, W]`` in [-1, 1] (C = 1 or 3) -> luminance ``[n, 1, H, W]`` in [0, 1]."""
    x = images.float().add(1.0).mul(0.5)
    if x.shape[1] == 3:
        w = torch.tensor(LUMA, device=x.device).view(1, 3, 1, 1)
        x = (x * w).sum(1, keepdim=True)
    elif x.shape[1] != 1:
        x = x.mean(1, keepdim=True)
    return x


def _filter(gray: Tensor, kernel: Tensor) -> Tensor:
    return F.conv2d(gray, kernel.to(gray.device, gray.dtype).view(1, 1, 3, 3))


def laplacian_variance(images: Tensor) -> Tensor:
    """Per-image variance of the Laplacian (``[n]``), images in [-1, 1]."""
    lap = _filter(luminance01(images), LAPLACIAN).flatten(1)
    return lap.var(dim=1, unbiased=False)


def noise_sigma(images: Tensor) -> Tensor:
    """Per-image Immerkaer noise standard deviation estimate (``[n]``, in [0, 1] intensity units)."""
    resp = _filter(luminance01(images), IMMERKAER).abs().flatten(1)
    return resp.mean(dim=1) * math.sqrt(math.pi / 2.0) / 6.0


def total_variation(images: Tensor) -> Tensor:
    """Per-image anisotropic total variation per pixel (``[n]``)."""
    g = luminance01(images)
    dx = (g[..., :, 1:] - g[..., :, :-1]).abs().flatten(1).mean(1)
    dy = (g[..., 1:, :] - g[..., :-1, :]).abs().flatten(1).mean(1)
    return dx + dy


def image_quality(images: Tensor) -> dict[str, Tensor]:
    """All measures per image: ``{"laplacian_var": [n], "noise": [n], "tv": [n]}``."""
    return {"laplacian_var": laplacian_variance(images), "noise": noise_sigma(images), "tv": total_variation(images)}


class QualityAccumulator:
    """Running means of the quality measures over any number of image batches."""

    def __init__(self) -> None:
        self.sums = {k: 0.0 for k in MEASURES}
        self.count = 0

    def update(self, images: Tensor) -> None:
        for k, v in image_quality(images).items():
            self.sums[k] += float(v.double().sum())
        self.count += int(images.shape[0])

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            return {k: float("nan") for k in MEASURES}
        return {k: s / self.count for k, s in self.sums.items()}


def quality_summary(fake: dict[str, float], real: dict[str, float]) -> dict[str, float]:
    """Flat ``{measure}_fake``, ``{measure}_real`` and ``{measure}_ratio`` (fake / real)."""
    out: dict[str, float] = {}
    for k in MEASURES:
        out[f"{k}_fake"] = fake[k]
        out[f"{k}_real"] = real[k]
        out[f"{k}_ratio"] = fake[k] / real[k] if real[k] > 0 else float("nan")
    return out
