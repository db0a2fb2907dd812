"""Which concept is missing (or in excess): segmented concept areas of generated vs held-out real images.

The two-sample tests say *that* two image sets differ; with the posters' concepts they can also say *which*
concept differs. A segmenter (:func:`gan_interp.dissect.segmenter.trained_segmenter`, trained on the posters'
ground-truth masks) segments the generated images and the held-out reals alike, so its errors fall on both
sides; per concept, the per-image area shares of the two sets are compared by a two-sided Mann-Whitney U test,
Bonferroni-corrected over the concepts. A concept is *missing* when its area is smaller in the fakes at
corrected ``p < alpha``, in *excess* when larger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from scipy.stats import mannwhitneyu
from torch import Tensor

from gan_interp.metrics.context import real_batches
from gan_interp.probes.latents import generate_batched, seeded
from gan_interp.probes.runner import probe_mode


@dataclass
class ConceptShift:
    """Per concept: mean area share in the fakes and the reals, Bonferroni-corrected p; the verdict."""

    fake_area: dict[str, float]  # mean share of the image's pixels the segmenter gives the concept (fakes)
    real_area: dict[str, float]  # the same for the held-out reals
    p_value: dict[str, float]  # Bonferroni-corrected two-sided Mann-Whitney p (min(1, K * p))
    missing: list[str] = field(default_factory=list)  # smaller in the fakes at corrected p < alpha
    excess: list[str] = field(default_factory=list)  # larger in the fakes at corrected p < alpha

    def summary(self) -> str:
        """``missing: orb (0.000 vs 0.024)``, ``excess: ...``, or ``none``."""

        def part(label: str, names: list[str]) -> str:
            items = ", ".join(f"{c} ({self.fake_area[c]:.3f} vs {self.real_area[c]:.3f})" for c in names)
            return f"{label}: {items}"

        parts = [part(label, names) for label, names in (("missing", self.missing), ("excess", self.excess)) if names]
        return "; ".join(parts) if parts else "none"


@torch.no_grad()
def concept_areas(segmenter: Any, images: Tensor, batch_size: int = 128) -> Tensor:
    """Per-image area share of every concept ``[N, K]`` (segmenter output averaged over the pixels)."""
    return torch.cat(
        [segmenter(images[i : i + batch_size]).float().mean((2, 3)).cpu() for i in range(0, len(images), batch_size)]
    )


def concept_shift(
    fake_areas: Tensor,  # [N, K] area shares of the generated images
    real_areas: Tensor,  # [M, K] area shares of the held-out reals
    names: list[str],  # the K concept names
    alpha: float = 0.01,  # family-wise level over the K concepts
) -> ConceptShift:
    """Mann-Whitney U per concept (two-sided, Bonferroni over K); see the module doc."""
    k = len(names)
    fake_mean, real_mean, p_corr = {}, {}, {}
    for j, name in enumerate(names):
        f, r = fake_areas[:, j].double().numpy(), real_areas[:, j].double().numpy()
        fake_mean[name], real_mean[name] = float(f.mean()), float(r.mean())
        same = f.min() == f.max() == r.min() == r.max()  # identical constants: no evidence of a difference
        p = 1.0 if same else float(mannwhitneyu(f, r, alternative="two-sided").pvalue)
        p_corr[name] = min(1.0, k * p)
    flagged = [c for c in names if p_corr[c] < alpha]
    return ConceptShift(
        fake_mean,
        real_mean,
        p_corr,
        missing=[c for c in flagged if fake_mean[c] < real_mean[c]],
        excess=[c for c in flagged if fake_mean[c] > real_mean[c]],
    )


def model_concept_shift(
    model: Any,  # a GANModule or planted generator
    dm: Any,  # the set-up GANDataModule (held-out reals from real_split)
    segmenter: Any,  # images [-1,1] -> bool [B, K, H, W], with concept_names
    n: int,  # generated and real images
    seed: int,  # latents (seed + 1, as the metrics) and the real subset (seed)
    real_split: str = "test",
    alpha: float = 0.01,
) -> ConceptShift:
    """:func:`concept_shift` of ``n`` generated images against ``n`` held-out reals of ``real_split``."""
    with probe_mode(model), torch.no_grad():  # eval mode; every submodule's flag restored after
        z = model.sample_z(n, generator=seeded(seed + 1))
        fakes = generate_batched(model, z).float().clamp(-1, 1).cpu()
    reals = torch.cat([x for x, _ in real_batches(dm, real_split, n, 128, seed)])
    names = list(segmenter.concept_names)
    return concept_shift(concept_areas(segmenter, fakes), concept_areas(segmenter, reals), names, alpha)
