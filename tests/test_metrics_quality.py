"""Image quality measures and the nearest-neighbour memorisation score: known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from gan_interp.metrics.memorisation import k_nearest, memorisation_score, nearest_neighbours
from gan_interp.metrics.quality import (
    QualityAccumulator,
    laplacian_variance,
    luminance01,
    noise_sigma,
    quality_summary,
    total_variation,
)


def _gray(x01: torch.Tensor) -> torch.Tensor:
    """[n, H, W] intensities in [0, 1] -> 1-channel images in [-1, 1]."""
    return (x01 * 2 - 1)[:, None]


def test_constant_images_score_zero() -> None:
    img = torch.full((2, 3, 16, 16), 0.3)
    assert torch.allclose(laplacian_variance(img), torch.zeros(2), atol=1e-10)
    assert torch.allclose(noise_sigma(img), torch.zeros(2), atol=1e-7)
    assert torch.allclose(total_variation(img), torch.zeros(2), atol=1e-7)


def test_luminance_of_rgb() -> None:
    img = torch.stack([torch.full((4, 4), 1.0), torch.full((4, 4), -1.0), torch.full((4, 4), -1.0)])[None]
    assert luminance01(img).flatten()[0].item() == pytest.approx(0.299)


def test_laplacian_variance_matches_scipy_on_the_interior() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((20, 24))
    ref = ndimage.laplace(x)[1:-1, 1:-1].var()
    assert laplacian_variance(_gray(torch.tensor(x)[None])).item() == pytest.approx(ref, rel=1e-5)
    blurred = ndimage.gaussian_filter(x, 1.5)
    assert laplacian_variance(_gray(torch.tensor(blurred)[None])).item() < 0.1 * ref  # blur -> less sharp


def test_immerkaer_noise_estimate_recovers_sigma_and_ignores_ramps() -> None:
    g = torch.Generator().manual_seed(0)
    sigma = 0.05
    noisy = 0.5 + sigma * torch.randn(3, 128, 128, generator=g, dtype=torch.float64)
    est = noise_sigma(_gray(noisy))
    assert torch.allclose(est, torch.full((3,), sigma, dtype=est.dtype), rtol=0.03)
    ramp = torch.linspace(0, 1, 64)[None, None, :].expand(1, 64, 64) * 0.5 + torch.linspace(0, 0.4, 64)[None, :, None]
    assert noise_sigma(_gray(ramp)).item() == pytest.approx(0.0, abs=1e-6)  # the kernel annihilates linear structure


def test_total_variation_known_values() -> None:
    yy, xx = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    checker = ((yy + xx) % 2).double()
    assert total_variation(_gray(checker[None])).item() == pytest.approx(2.0)  # every step is 1, both axes
    ramp = torch.linspace(0, 1, 11)[None, :].expand(5, 11)
    assert total_variation(_gray(ramp[None])).item() == pytest.approx(
        0.1, rel=1e-5
    )  # 1/(W-1) horizontally, 0 vertically


def test_accumulator_streams_means_and_summary_ratios() -> None:
    g = torch.Generator().manual_seed(1)
    imgs = torch.rand(10, 3, 12, 12, generator=g) * 2 - 1
    acc = QualityAccumulator()
    for chunk in imgs.split(3):
        acc.update(chunk)
    means = acc.compute()
    assert means["tv"] == pytest.approx(total_variation(imgs).mean().item(), rel=1e-6)
    assert means["laplacian_var"] == pytest.approx(laplacian_variance(imgs).mean().item(), rel=1e-6)
    s = quality_summary(
        {"laplacian_var": 1.0, "noise": 2.0, "tv": 3.0}, {"laplacian_var": 2.0, "noise": 2.0, "tv": 0.0}
    )
    assert s["laplacian_var_ratio"] == 0.5 and s["noise_ratio"] == 1.0 and np.isnan(s["tv_ratio"])
    assert np.isnan(QualityAccumulator().compute()["tv"])


def test_nearest_neighbours_chunked_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(2)
    q, r = torch.randn(37, 6, generator=g), torch.randn(53, 6, generator=g)
    d, i = nearest_neighbours(q, r, chunk=8)
    ref = torch.cdist(q.double(), r.double())
    assert torch.equal(i, ref.argmin(1))
    assert torch.allclose(d.double(), ref.min(1).values, atol=1e-4)
    d3, i3 = k_nearest(q, r, k=3, chunk=8)
    ref_d, ref_i = ref.topk(3, dim=1, largest=False)
    assert torch.equal(i3, ref_i) and torch.allclose(d3.double(), ref_d, atol=1e-4)


def test_memorisation_score_copies_vs_fresh_samples() -> None:
    g = torch.Generator().manual_seed(3)
    train, held, fresh = (
        torch.randn(400, 4, generator=g),
        torch.randn(200, 4, generator=g),
        torch.randn(200, 4, generator=g),
    )
    copies = train[:200] + 1e-3 * torch.randn(200, 4, generator=g)
    copied = memorisation_score(copies, train, held)
    assert copied["nn_ratio"] < 0.01 and copied["copy_fraction"] == 1.0
    honest = memorisation_score(fresh, train, held)
    assert 0.75 < honest["nn_ratio"] < 1.33
    assert honest["copy_fraction"] < 0.15  # about the 5% quantile used as threshold
    far = memorisation_score(fresh + 5.0, train, held)
    assert far["nn_ratio"] > 3 and far["copy_fraction"] < 0.15
    blurry = memorisation_score(torch.zeros(50, 4) + 1e-3 * torch.randn(50, 4, generator=g), train, held)
    assert blurry["nn_ratio"] < 0.9 and blurry["copy_fraction"] < 0.15  # the mean is near everything, copies nothing
