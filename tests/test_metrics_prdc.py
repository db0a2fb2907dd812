"""Precision / recall / density / coverage: the published formulas on a hand-worked case, the authors'
reference code (``prdc`` on PyPI) as an oracle, and the known answers the papers state."""

from __future__ import annotations

import pytest
import torch

from gan_interp.metrics.prdc import kth_neighbour_distance, prdc


def _gauss(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) + shift


def test_a_hand_worked_case_matches_the_published_formulas() -> None:
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])  # NND_1 = 1 for every real point
    fake = torch.tensor([[0.5], [10.0]])  # NND_1 = 9.5 for both fakes
    got = prdc(real, fake, k_precision_recall=1, k_density_coverage=1)
    # precision: 0.5 lies in B(0, 1) and B(1, 1); 10 in no real ball -> 1/2
    # recall: B(0.5, 9.5) holds all four reals -> 1
    # density: 0.5 is in 2 real balls, 10 in none -> (2 + 0) / (1 * 2) = 1
    # coverage: reals 0 and 1 have a fake (0.5) inside their ball of radius 1; 2 and 3 do not -> 1/2
    assert got == {"precision": 0.5, "recall": 1.0, "density": 1.0, "coverage": 0.5}
    assert kth_neighbour_distance(real, 2).tolist() == pytest.approx([2.0, 1.0, 1.0, 2.0])  # itself excluded


@pytest.mark.parametrize("k_pr, k_dc", [(3, 3), (5, 5), (3, 5)])
def test_the_authors_reference_code_agrees(k_pr, k_dc) -> None:
    ref = pytest.importorskip("prdc")  # the dev extra installs it
    real, fake = _gauss(300, 12, 0), _gauss(250, 12, 1, shift=0.4)
    got = prdc(real, fake, k_precision_recall=k_pr, k_density_coverage=k_dc, chunk=64)  # several row blocks
    pr = ref.compute_prdc(real.numpy(), fake.numpy(), nearest_k=k_pr)
    dc = ref.compute_prdc(real.numpy(), fake.numpy(), nearest_k=k_dc)
    assert got["precision"] == pytest.approx(pr["precision"]) and got["recall"] == pytest.approx(pr["recall"])
    assert got["density"] == pytest.approx(dc["density"]) and got["coverage"] == pytest.approx(dc["coverage"])


def test_samples_of_one_distribution_score_about_one() -> None:
    got = prdc(_gauss(1000, 4, 0), _gauss(1000, 4, 1))
    assert got["precision"] > 0.9 and got["recall"] > 0.9
    assert got["density"] == pytest.approx(1.0, abs=0.1)
    assert got["coverage"] > 0.9  # Naeem et al.: 1 - 1/2^k = 0.97 in expectation for k = 5


def test_disjoint_distributions_score_zero() -> None:
    got = prdc(_gauss(500, 4, 0), _gauss(500, 4, 1, shift=100.0))
    assert got == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_a_mode_dropping_generator_loses_recall_and_coverage_not_precision() -> None:
    real = _gauss(1000, 8, 0)
    real[:500, 0] += 20.0  # two well-separated clusters
    fake = _gauss(1000, 8, 1)  # only the second cluster
    got = prdc(real, fake)
    assert got["precision"] > 0.8 and got["density"] == pytest.approx(1.0, abs=0.15)  # what it makes is real-like
    assert got["recall"] < 0.55 and got["coverage"] < 0.55  # half of the real modes are missing


def test_too_few_points_for_k_is_an_error() -> None:
    with pytest.raises(ValueError, match="k=5 needs at least k \\+ 1 = 6 points"):
        prdc(_gauss(3, 2, 0), _gauss(10, 2, 1))
