"""Precision / recall (Kynkaanniemi et al. 2019) and density / coverage (Naeem et al. 2020) on features.

Both pairs estimate the real and the generated manifolds by k-nearest-neighbour balls. With
``NND_k(x)`` the distance of ``x`` to its k-th nearest neighbour within its own set (itself excluded),
``B(x, r)`` the open ball, ``X`` the ``N`` real and ``Y`` the ``M`` generated feature vectors:

* ``precision = 1/M sum_j 1[Y_j in U_i B(X_i, NND_k(X_i))]`` - fakes inside the real manifold (fidelity);
* ``recall    = 1/N sum_i 1[X_i in U_j B(Y_j, NND_k(Y_j))]`` - reals inside the fake manifold (diversity);
* ``density   = 1/(kM) sum_j sum_i 1[Y_j in B(X_i, NND_k(X_i))]`` - how many real balls hold a fake (~1 for
  matching distributions, unbounded above, robust to real outliers);
* ``coverage  = 1/N sum_i 1[min_j d(X_i, Y_j) < NND_k(X_i)]`` - real balls holding at least one fake
  (``1 - 1/2^k`` in expectation for matching distributions).

The papers use k = 3 for precision / recall and k = 5 for density / coverage; :func:`prdc` takes both.
The formulas (strict ``<``, the k-th neighbour excluding the point itself) are those of the authors'
reference code (the ``prdc`` package on PyPI, the test oracle in ``tests/test_metrics_prdc.py``); here
distances are float64 and computed in row blocks, so memory is ``O(chunk * max(N, M))``, not ``N * M``.
"""

from __future__ import annotations

import torch
from torch import Tensor

PRDC_KEYS = ("precision", "recall", "density", "coverage")
K_PRECISION_RECALL = 3  # Kynkaanniemi et al. 2019
K_DENSITY_COVERAGE = 5  # Naeem et al. 2020


def _blocks(x: Tensor, y: Tensor, chunk: int):
    """``(row offset, distances [c, len(y)])`` for row blocks of ``x`` (Euclidean, float64)."""
    for i0 in range(0, x.shape[0], chunk):
        yield i0, torch.cdist(x[i0 : i0 + chunk], y)


def kth_neighbour_distances(x: Tensor, ks: tuple[int, ...], chunk: int = 1024) -> Tensor:
    """``[n, len(ks)]``: the distance of every row of ``x`` to its ``k``-th nearest other row, per ``k``."""
    if not 1 <= min(ks) <= max(ks) < x.shape[0]:
        raise ValueError(f"k={max(ks)} needs at least k + 1 = {max(ks) + 1} points, got {x.shape[0]}")
    out = torch.empty(x.shape[0], len(ks), dtype=x.dtype, device=x.device)
    for i0, d in _blocks(x, x, chunk):
        nearest = d.topk(max(ks) + 1, dim=1, largest=False).values  # [:, 0] is the point itself
        out[i0 : i0 + d.shape[0]] = nearest[:, list(ks)]
    return out


def kth_neighbour_distance(x: Tensor, k: int, chunk: int = 1024) -> Tensor:
    """``[n]``: NND_k, the distance of every row of ``x`` to its ``k``-th nearest other row."""
    return kth_neighbour_distances(x, (k,), chunk)[:, 0]


def prdc(
    real: Tensor,  # [N, d] real feature vectors
    fake: Tensor,  # [M, d] generated feature vectors
    k_precision_recall: int = K_PRECISION_RECALL,  # k of the k-NN balls for precision / recall
    k_density_coverage: int = K_DENSITY_COVERAGE,  # k for density / coverage
    chunk: int = 1024,  # row block of the distance matrices
) -> dict[str, float]:
    """``precision``, ``recall``, ``density``, ``coverage`` of ``fake`` against ``real`` (see module doc)."""
    real = real.reshape(real.shape[0], -1).double()
    fake = fake.reshape(fake.shape[0], -1).double()
    k_pr, k_dc = int(k_precision_recall), int(k_density_coverage)
    r_real_pr, r_real_dc = kth_neighbour_distances(real, (k_pr, k_dc), chunk).unbind(1)
    r_fake_pr = kth_neighbour_distance(fake, k_pr, chunk)
    in_real_ball = torch.zeros(fake.shape[0], dtype=torch.bool)  # precision: fake inside some real k_pr-ball
    real_balls_holding = torch.zeros(fake.shape[0], dtype=torch.float64)  # density: real k_dc-balls per fake
    recalled = torch.empty(real.shape[0], dtype=torch.bool)  # recall: real inside some fake k_pr-ball
    covered = torch.empty(real.shape[0], dtype=torch.bool)  # coverage: nearest fake inside the real k_dc-ball
    for i0, d in _blocks(real, fake, chunk):  # d[i, j] = |real_i - fake_j|
        rows = slice(i0, i0 + d.shape[0])
        in_real_ball |= (d < r_real_pr[rows, None]).any(0).cpu()
        real_balls_holding += (d < r_real_dc[rows, None]).sum(0).double().cpu()
        recalled[rows] = (d < r_fake_pr[None, :]).any(1).cpu()
        covered[rows] = (d.min(1).values < r_real_dc[rows]).cpu()
    return {
        "precision": float(in_real_ball.double().mean()),
        "recall": float(recalled.double().mean()),
        "density": float(real_balls_holding.mean() / k_dc),
        "coverage": float(covered.double().mean()),
    }
