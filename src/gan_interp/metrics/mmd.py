"""Unbiased MMD^2 with an RBF kernel, median-heuristic bandwidth and a permutation test.

Everything is computed in ``chunk x chunk`` kernel blocks, so memory is
``O(chunk^2 + N * (n_permutations + 2))`` for ``N = n_x + n_y`` pooled points, never ``O(N^2)``.

The permutation test evaluates all permutations in the same pass over the kernel: with an
indicator matrix ``I`` (one column per labelling: the observed one, the permuted ones, and a
column of ones) the blocks accumulate ``A = K @ I``; then for each labelling ``S_xx = I_x . A_x``,
``S_xy = 1 . A_x - S_xx`` and ``S_yy = 1'K1 - S_xx - 2 S_xy``, and

    MMD_u^2 = (S_xx - n) / (n (n-1)) + (S_yy - m) / (m (m-1)) - 2 S_xy / (n m)

(the RBF kernel has ``k(z, z) = 1`` on the diagonal, which the block code forces exactly).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from gan_interp.progress import Progress


@dataclass
class MMDResult:
    """Outcome of :func:`mmd_test`."""

    mmd2: float  # unbiased MMD^2 estimate (can be slightly negative when the samples agree)
    p_value: float  # permutation p-value, (1 + #{perm >= observed}) / (1 + n_permutations)
    bandwidth: float  # RBF sigma used: k(x, y) = exp(-|x - y|^2 / (2 sigma^2))
    n_x: int
    n_y: int
    n_permutations: int

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


def sq_dists(x: Tensor, y: Tensor) -> Tensor:
    """Squared Euclidean distances ``[len(x), len(y)]`` (clamped at 0)."""
    d2 = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1)[None, :] - 2.0 * (x @ y.T)
    return d2.clamp_min_(0.0)


def median_bandwidth(
    x: Tensor,  # [n, ...] first sample
    y: Tensor,  # [m, ...] second sample
    max_points: int = 1000,  # pooled points used for the median (a seeded subsample)
    seed: int = 0,
) -> float:
    """Median heuristic: the median pairwise distance of the pooled sample (off-diagonal)."""
    z = torch.cat([_flat(x), _flat(y)]).double()
    if z.shape[0] > max_points:
        g = torch.Generator().manual_seed(seed)
        z = z[torch.randperm(z.shape[0], generator=g)[:max_points].to(z.device)]
    d2 = sq_dists(z, z)
    iu = torch.triu_indices(z.shape[0], z.shape[0], offset=1, device=z.device)
    med = d2[iu[0], iu[1]].median().sqrt().item()
    return med if med > 0 and math.isfinite(med) else 1.0


def _kernel_times(
    z: Tensor,  # [N, d] pooled points
    ind: Tensor,  # [N, P] columns to multiply by the kernel matrix
    bandwidth: float,
    chunk: int,
) -> Tensor:
    """``K @ ind`` in float64 for the RBF kernel matrix of ``z``, computed block by block."""
    n = z.shape[0]
    out = torch.zeros(n, ind.shape[1], dtype=torch.float64, device=z.device)
    gamma = 1.0 / (2.0 * bandwidth * bandwidth)
    sq = z.pow(2).sum(1)
    n_chunks = -(-n // chunk)
    progress = Progress(n_chunks * (n_chunks + 1) // 2, f"mmd kernel ({ind.shape[1] - 2} permutations)", unit="blocks")
    for i0 in range(0, n, chunk):
        i1 = min(i0 + chunk, n)
        zi, sqi = z[i0:i1], sq[i0:i1]
        for j0 in range(i0, n, chunk):  # upper triangle of blocks; the transpose fills the rest
            j1 = min(j0 + chunk, n)
            d2 = (sqi[:, None] + sq[None, j0:j1] - 2.0 * (zi @ z[j0:j1].T)).clamp_min_(0.0)
            if i0 == j0:
                d2.fill_diagonal_(0.0)  # k(z, z) = 1 exactly
            k = torch.exp(-gamma * d2)
            out[i0:i1] += (k @ ind[j0:j1]).double()
            if j0 != i0:
                out[j0:j1] += (k.T @ ind[i0:i1]).double()
            progress.update(1)
    progress.close()
    return out


def _mmd2_from_sums(s_xx: Tensor, s_xy: Tensor, s_yy: Tensor, n: int, m: int) -> Tensor:
    return (s_xx - n) / (n * (n - 1)) + (s_yy - m) / (m * (m - 1)) - 2.0 * s_xy / (n * m)


def mmd_test(
    x: Tensor,  # [n, ...] sample of P (flattened to vectors)
    y: Tensor,  # [m, ...] sample of Q
    n_permutations: int = 200,  # 0 -> no test (p_value = nan)
    bandwidth: float | None = None,  # RBF sigma; None -> median heuristic on the pooled sample
    chunk: int = 2048,  # kernel block side (memory ~ chunk^2 floats)
    seed: int = 0,  # seeds the bandwidth subsample and the permutations
    dtype: torch.dtype = torch.float32,  # kernel block precision (sums are always float64)
) -> MMDResult:
    """Unbiased MMD^2 between two samples with an RBF kernel and a permutation p-value."""
    x, y = _flat(x).to(dtype), _flat(y).to(dtype)
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"MMD needs at least 2 points per sample, got {n} and {m}")
    if bandwidth is None:
        bandwidth = median_bandwidth(x, y, seed=seed)
    z = torch.cat([x, y])
    n_tot = n + m
    g = torch.Generator().manual_seed(seed)
    ind = torch.zeros(n_tot, n_permutations + 2, dtype=dtype)
    ind[:n, 0] = 1.0  # the observed labelling
    for p in range(n_permutations):
        ind[torch.randperm(n_tot, generator=g)[:n], p + 1] = 1.0
    ind[:, -1] = 1.0  # K @ 1 gives the total kernel sum
    a = _kernel_times(z, ind.to(z.device), float(bandwidth), max(1, int(chunk))).cpu()
    ind64 = ind.double()
    total = a[:, -1].sum()
    s_xx = (ind64[:, :-1] * a[:, :-1]).sum(0)
    s_xy = a[:, :-1].sum(0) - s_xx
    s_yy = total - s_xx - 2.0 * s_xy
    stats = _mmd2_from_sums(s_xx, s_xy, s_yy, n, m)
    observed = float(stats[0])
    if n_permutations > 0:
        p_value = float((1 + (stats[1:] >= observed).sum().item()) / (1 + n_permutations))
    else:
        p_value = float("nan")
    return MMDResult(observed, p_value, float(bandwidth), n, m, n_permutations)


def mmd2_unbiased(
    x: Tensor,  # [n, ...]
    y: Tensor,  # [m, ...]
    bandwidth: float | None = None,
    chunk: int = 2048,
    dtype: torch.dtype = torch.float32,
) -> float:
    """Unbiased MMD^2 (no permutation test)."""
    return mmd_test(x, y, n_permutations=0, bandwidth=bandwidth, chunk=chunk, dtype=dtype).mmd2
