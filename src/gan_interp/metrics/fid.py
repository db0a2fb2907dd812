"""FID, KID and IS through torchmetrics, fed with precomputed features.

Features are extracted once per batch (see :mod:`gan_interp.metrics.features`) and handed to
torchmetrics' ``FrechetInceptionDistance`` / ``KernelInceptionDistance`` / ``InceptionScore``
through a pass-through ``feature`` module, so one network pass serves all three metrics.
Memory: FID keeps only running sums (``O(d^2)``); KID keeps the ``[n, d]`` features and IS the
``[n, k]`` logits (small for the feature sizes used here, never the images).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg
from torch import Tensor, nn


class PassThrough(nn.Module):
    """``feature`` module for torchmetrics when the inputs already are features ``[n, d]``."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, x: Tensor) -> Tensor:
        return x


class FeatureMetrics:
    """Streaming FID / KID / IS on precomputed features (real and fake updated batch by batch)."""

    def __init__(
        self,
        num_features: int,  # feature size d
        fid: bool = True,
        kid: bool = True,
        inception_score: bool = True,  # needs logits in update_fake
        kid_subsets: int = 50,  # KID: random subsets averaged
        kid_subset_size: int = 1000,  # KID: points per subset (clipped to the sample size)
        is_splits: int = 10,  # IS: splits of the fake sample
    ) -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.inception import InceptionScore
        from torchmetrics.image.kid import KernelInceptionDistance

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            self.fid = FrechetInceptionDistance(feature=PassThrough(num_features)) if fid else None
            self.kid = (
                KernelInceptionDistance(
                    feature=PassThrough(num_features), subsets=kid_subsets, subset_size=kid_subset_size
                )
                if kid
                else None
            )
            self.inception_score = InceptionScore(feature=PassThrough(0), splits=is_splits) if inception_score else None
        self.kid_subset_size = kid_subset_size
        self.n_real = self.n_fake = 0

    def update_real(self, feats: Tensor) -> None:
        feats = feats.detach().double().cpu()
        if self.fid is not None:
            self.fid.update(feats, real=True)
        if self.kid is not None:
            self.kid.update(feats.float(), real=True)
        self.n_real += feats.shape[0]

    def update_fake(self, feats: Tensor | None, logits: Tensor | None = None) -> None:
        """One batch of fake features (None: only logits, for IS alone) and class logits."""
        if feats is not None:
            feats = feats.detach().double().cpu()
            if self.fid is not None:
                self.fid.update(feats, real=False)
            if self.kid is not None:
                self.kid.update(feats.float(), real=False)
        if self.inception_score is not None and logits is not None:
            self.inception_score.update(logits.detach().double().cpu())
        batch = feats if feats is not None else logits
        self.n_fake += 0 if batch is None else batch.shape[0]

    def compute(self) -> dict[str, float]:
        """``fid``, ``kid_mean``, ``kid_std``, ``is_mean``, ``is_std`` (whatever was enabled)."""
        out: dict[str, float] = {}
        if self.fid is not None:
            out["fid"] = float(self.fid.compute())
        if self.kid is not None:
            self.kid.subset_size = max(2, min(self.kid_subset_size, self.n_real, self.n_fake))
            mean, std = self.kid.compute()
            out["kid_mean"], out["kid_std"] = float(mean), float(std)
        if self.inception_score is not None and self.inception_score.features:
            mean, std = self.inception_score.compute()
            out["is_mean"], out["is_std"] = float(mean), float(std)
        return out


def frechet_distance_gaussians(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """Closed form ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})`` (numpy/scipy reference)."""
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def fid_from_features(real: Tensor, fake: Tensor) -> float:
    """FID between two feature matrices ``[n, d]`` via torchmetrics (one-shot helper)."""
    m = FeatureMetrics(real.shape[1], fid=True, kid=False, inception_score=False)
    m.update_real(real)
    m.update_fake(fake)
    return m.compute()["fid"]


__all__ = ["FeatureMetrics", "PassThrough", "fid_from_features", "frechet_distance_gaussians"]
