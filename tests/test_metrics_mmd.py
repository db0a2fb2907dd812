"""MMD^2: known answers, a direct O(n^2) reference, chunking invariance, permutation-test calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_interp.metrics.mmd import median_bandwidth, mmd2_unbiased, mmd_test


def _gauss(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    x[:, 0] += shift
    return x


def _direct_mmd2(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """Textbook unbiased MMD^2 with the full kernel matrices (numpy, float64)."""

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * sigma**2))

    n, m = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()


@pytest.mark.parametrize("n,m", [(120, 120), (90, 150)])
def test_matches_direct_quadratic_computation(n: int, m: int) -> None:
    x, y = _gauss(n, 4, 1), _gauss(m, 4, 2, shift=0.3)
    sigma = 1.7
    ref = _direct_mmd2(x.double().numpy(), y.double().numpy(), sigma)
    assert mmd2_unbiased(x, y, bandwidth=sigma, dtype=torch.float64) == pytest.approx(ref, rel=1e-10, abs=1e-12)
    assert mmd2_unbiased(x, y, bandwidth=sigma) == pytest.approx(ref, rel=1e-4, abs=1e-7)  # float32 blocks


def test_median_heuristic_is_the_pooled_median_distance() -> None:
    x, y = _gauss(40, 3, 3), _gauss(50, 3, 4, shift=1.0)
    z = torch.cat([x, y]).double().numpy()
    d = np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1))
    expected = np.median(d[np.triu_indices(len(z), 1)])
    assert median_bandwidth(x, y) == pytest.approx(expected, rel=1e-9)
    res = mmd_test(x, y, n_permutations=0)
    assert res.bandwidth == pytest.approx(expected, rel=1e-9)
    assert res.mmd2 == pytest.approx(_direct_mmd2(x.double().numpy(), y.double().numpy(), expected), rel=1e-4)


def test_chunked_equals_unchunked_including_permutations() -> None:
    x, y = _gauss(70, 5, 5), _gauss(61, 5, 6, shift=0.2)
    a = mmd_test(x, y, n_permutations=50, chunk=10_000, seed=3, dtype=torch.float64)
    b = mmd_test(x, y, n_permutations=50, chunk=7, seed=3, dtype=torch.float64)
    assert b.mmd2 == pytest.approx(a.mmd2, rel=1e-12, abs=1e-14)
    assert b.p_value == a.p_value and b.bandwidth == a.bandwidth


def test_same_distribution_is_near_zero_and_not_significant() -> None:
    res = mmd_test(_gauss(400, 5, 10), _gauss(400, 5, 11), n_permutations=200, seed=0)
    assert abs(res.mmd2) < 0.005
    assert res.p_value > 0.05


def test_shifted_gaussians_are_far_and_significant() -> None:
    res = mmd_test(_gauss(300, 5, 12), _gauss(300, 5, 13, shift=2.0), n_permutations=200, seed=0)
    assert res.mmd2 > 0.1
    assert res.p_value < 0.01  # no permutation reached the observed value: p = 1/201


def test_permutation_p_values_are_calibrated_under_the_null() -> None:
    ps = np.array(
        [mmd_test(_gauss(40, 2, 100 + s), _gauss(40, 2, 200 + s), n_permutations=50, seed=s).p_value for s in range(30)]
    )
    assert (ps < 0.05).mean() <= 0.2  # ~5% expected; a broken test would reject far more often
    assert 0.3 < ps.mean() < 0.7  # roughly uniform


def test_images_are_flattened_and_tiny_samples_rejected() -> None:
    imgs = torch.rand(10, 3, 4, 4)
    flat = imgs.reshape(10, -1)
    assert mmd2_unbiased(imgs, imgs.flip(0) + 0.1, bandwidth=1.0) == pytest.approx(
        mmd2_unbiased(flat, flat.flip(0) + 0.1, bandwidth=1.0)
    )
    with pytest.raises(ValueError, match="at least 2"):
        mmd_test(torch.zeros(1, 3), torch.zeros(5, 3))
