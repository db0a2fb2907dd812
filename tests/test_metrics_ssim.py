"""SSIM scores: known answers for identical sets, a collapsed generator and noise."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gan_interp.metrics.ssim import SSIM_KEYS, ssim_per_pair, ssim_scores


def _smooth(n: int, seed: int, size: int = 32) -> torch.Tensor:
    """Smooth random images in [-1, 1] (4x4 noise, bilinear up): structured, and all different."""
    coarse = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)


def _noise(n: int, seed: int, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_ssim_is_torchmetrics_per_pair() -> None:
    from torchmetrics.functional.image import structural_similarity_index_measure

    a, b = (_smooth(5, 0) + 1) / 2, (_smooth(5, 1) + 1) / 2
    assert ssim_per_pair(a, a).tolist() == pytest.approx([1.0] * 5)
    per_pair = ssim_per_pair(a, b, chunk=2)  # chunks change nothing
    assert (per_pair < 0.99).all()
    assert float(per_pair.mean()) == pytest.approx(float(structural_similarity_index_measure(a, b, data_range=1.0)))


def test_identical_sets_match_exactly() -> None:
    real = _smooth(64, 0)
    got = ssim_scores(real, real.clone(), queries=32, pairs=64)
    assert set(got) == set(SSIM_KEYS)
    assert got["nn_fake"] == pytest.approx(1.0, abs=1e-5)  # every fake is a copy of a real image
    assert got["nn_real"] < 0.99  # ... while a real image's nearest *other* real is not itself
    assert got["pairs_fake"] == got["pairs_real"]  # the same pairs of the same images


def test_a_collapsed_generator_has_intra_set_ssim_one() -> None:
    real = _smooth(64, 0)
    fake = _smooth(1, 1).expand(64, -1, -1, -1)  # one image, over and over
    got = ssim_scores(real, fake, queries=32, pairs=64)
    assert got["pairs_fake"] == pytest.approx(1.0, abs=1e-5)
    assert got["pairs_real"] < 0.8


def test_noise_is_far_from_structured_images() -> None:
    real = _smooth(64, 0)
    got = ssim_scores(real, _noise(64, 1), queries=32, pairs=64)
    assert got["nn_fake"] < 0.2 and got["nn_real"] > got["nn_fake"] + 0.3
    assert abs(got["pairs_fake"]) < 0.05  # independent noise images share no structure
    uint8 = ssim_scores((real + 1).mul(127.5).round().to(torch.uint8), _noise(64, 1), queries=32, pairs=64)
    assert uint8["nn_real"] == pytest.approx(got["nn_real"], abs=0.01)  # uint8 images read as [0, 255]


def test_images_smaller_than_the_window_are_an_error() -> None:
    with pytest.raises(ValueError, match="smaller than the SSIM window 11"):
        ssim_scores(_smooth(8, 0, size=8), _smooth(8, 1, size=8))
    assert set(ssim_scores(_smooth(8, 0, size=8), _smooth(8, 1, size=8), kernel_size=5, queries=4, pairs=4)) == set(
        SSIM_KEYS
    )
