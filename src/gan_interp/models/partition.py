"""Balanced power-cell (Laguerre) partitions of a finite data set: semi-discrete optimal transport.

k-GAN (Ambrogioni, Güçlü & van Gerven 2019) gives every ensemble member one cell of the data.
Member ``j`` owns a *site* ``s_j`` in a feature space and an *offset* ``w_j``; a point belongs to

    cell(x) = argmin_j  c(x, s_j) - w_j          (c = squared Euclidean distance)

and the offsets are chosen so that the cells hold prescribed masses (``1/k`` each by default).
For the empirical measure of ``n`` points this is the optimal transport problem between the
points (mass ``1/n`` each) and the sites (mass ``m_j/n``, ``sum m_j = n``); its optimal plan is a
hard assignment (the transportation polytope has integral vertices), the offsets are its dual
variables, and any optimal assignment is a power-cell assignment for some offsets.

:func:`balanced_partition` solves this exactly on the finite set, with our own torch code:

1. dual coordinate ascent (Gauss-Seidel): offset ``w_j`` is set to the value that gives cell ``j``
   exactly ``m_j`` points with the other offsets fixed (a midpoint between two sorted thresholds).
   A few sweeps balance the cells up to a handful of points and warm-start from the last offsets;
2. exact repair by successive shortest paths on the ``k``-node *exchange graph*
   (edge ``j -> l`` costs ``min_{i in cell j} c(x_i, s_l) - c(x_i, s_j)``): a power-cell
   assignment has no negative cycle, and moving one point along each edge of a shortest path
   from an over-full to an under-full cell keeps it that way, so the result is optimal;
3. offsets that reproduce the exact assignment with the largest uniform margin: shortest-path
   potentials on the exchange graph shifted by half its minimum cycle mean (Karp). For data in
   general position the margin is positive and ``power_assign(cost, offsets)`` returns exactly the
   optimal assignment; with ties (duplicate points) the margin is 0 and ties stay ambiguous.

The other helpers are k-means-style: k-means++ seeding, centroid sites (a Lloyd step), medoids and
re-seeding of empty cells (only possible for unbalanced Voronoi cells, ``balanced=False``).
All functions are pure: tensors in, tensors out; costs are computed in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gan_interp.errors import ConfigError
from gan_interp.kmeans import kmeans_pp, squared_distances

FEATURE_SPACES = ("pixels", "gray")


# -- features and costs ------------------------------------------------------------------------
def pixel_features(images: Tensor, size: int = 8, space: str = "pixels") -> Tensor:
    """Images ``[N, C, H, W]`` -> ``[N, C*size*size]`` area-downsampled pixels (``gray``: luma only)."""
    if space not in FEATURE_SPACES:
        raise ConfigError(f"model.feature_space={space!r} is unknown; use one of {', '.join(FEATURE_SPACES)}")
    x = images.float()
    if space == "gray" and x.shape[1] == 3:
        x = (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    elif space == "gray":
        x = x.mean(1, keepdim=True)
    return F.adaptive_avg_pool2d(x, size).flatten(1)


def balanced_capacities(n: int, k: int) -> Tensor:
    """Cell sizes ``m_j`` for the uniform target 1/k: ``n // k`` each, the first ``n % k`` get one more."""
    if n < k:
        raise ConfigError(f"cannot split {n} training images into model.k={k} cells; use model.k<={n}")
    caps = torch.full((k,), n // k, dtype=torch.long)
    caps[: n % k] += 1
    return caps


def power_assign(cost: Tensor, offsets: Tensor) -> Tensor:
    """Power-cell assignment ``argmin_j cost[i, j] - offsets[j]`` (ties: lowest j); shape ``[n]``."""
    return torch.argmin(cost - offsets.to(cost.dtype), dim=1)


# -- exact balanced assignment ----------------------------------------------------------------
@dataclass
class Partition:
    """Result of :func:`balanced_partition`."""

    assignment: Tensor  # [n] long, cell of every point
    offsets: Tensor  # [k] float64 power-cell offsets w (mean 0)
    counts: Tensor  # [k] long, points per cell
    cost: float  # sum_i cost[i, assignment[i]]
    margin: float  # min_i over cells of the power-cell gap (> 0: power_assign reproduces assignment)


def _gauss_seidel_sweeps(cost: Tensor, caps: Tensor, offsets: Tensor, n_sweeps: int) -> Tensor:
    """Dual coordinate ascent: set each ``w_j`` so cell j holds exactly ``m_j`` points, others fixed."""
    n, k = cost.shape
    w = offsets.clone()
    for _ in range(n_sweeps):
        for j in range(k):
            others = cost - w
            others[:, j] = float("inf")
            thresholds, _ = torch.sort(cost[:, j] - others.amin(1))  # i in cell j iff w_j > t_i
            m = int(caps[j])
            lo = thresholds[m - 1] if m > 0 else thresholds[0] - 1.0
            hi = thresholds[m] if m < n else thresholds[-1] + 1.0
            w[j] = 0.5 * (lo + hi)
        if torch.equal(torch.bincount(power_assign(cost, w), minlength=k), caps):
            break
    return w - w.mean()


def exchange_costs(cost: Tensor, assignment: Tensor, k: int) -> Tensor:
    """``D[j, l] = min_{i in cell j} cost[i, l] - cost[i, j]`` (+inf for empty j and on the diagonal)."""
    delta = cost - cost.gather(1, assignment[:, None])
    d = torch.full((k, k), float("inf"), dtype=cost.dtype)
    d = d.scatter_reduce(0, assignment[:, None].expand(-1, k), delta, reduce="amin", include_self=True)
    d.fill_diagonal_(float("inf"))
    return d


def _bellman_ford(d: np.ndarray, sources: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Multi-source shortest paths on a dense ``k x k`` graph (no negative cycles assumed)."""
    k = d.shape[0]
    dist = np.where(sources, 0.0, np.inf)
    pred = np.full(k, -1)
    for _ in range(k):
        cand = dist[:, None] + d  # cand[j, l]: reach l via j
        best_j = np.argmin(cand, axis=0)
        best = cand[best_j, np.arange(k)]
        better = best < dist - 1e-12
        if not better.any():
            break
        dist = np.where(better, best, dist)
        pred = np.where(better, best_j, pred)
    return dist, pred


def _repair_balance(cost: Tensor, assignment: Tensor, caps: Tensor) -> Tensor:
    """Successive shortest paths: move points from over-full to under-full cells at least extra cost."""
    k = cost.shape[1]
    assignment = assignment.clone()
    counts = torch.bincount(assignment, minlength=k)
    while bool((counts > caps).any()):
        d = exchange_costs(cost, assignment, k).numpy()
        dist, pred = _bellman_ford(d, (counts > caps).numpy())
        under = (counts < caps).numpy()
        target = int(np.argmin(np.where(under, dist, np.inf)))
        path = [target]
        while pred[path[-1]] != -1 and len(path) <= k:
            path.append(int(pred[path[-1]]))
        moves = []  # (point, new cell); chosen before moving so each edge moves a distinct point
        for dst, src in zip(path[:-1], path[1:]):
            members = torch.nonzero(assignment == src).flatten()
            gain = cost[members, dst] - cost[members, src]
            moves.append((int(members[torch.argmin(gain)]), dst))
        for i, dst in moves:
            assignment[i] = dst
        counts = torch.bincount(assignment, minlength=k)
    return assignment


def _min_cycle_mean(d: np.ndarray) -> float:
    """Karp's minimum mean cycle weight of a dense graph (``inf`` when it has no cycle)."""
    k = d.shape[0]
    walk = np.full((k + 1, k), np.inf)
    walk[0] = 0.0
    for m in range(1, k + 1):
        walk[m] = np.min(walk[m - 1][:, None] + d, axis=0)
    with np.errstate(invalid="ignore"):
        ratios = (walk[k][None, :] - walk[:k]) / (k - np.arange(k))[:, None]
    ratios = np.where(np.isnan(ratios), -np.inf, ratios)
    per_node = ratios.max(axis=0)
    finite = np.isfinite(walk[k])
    return float(per_node[finite].min()) if finite.any() else float("inf")


def margin_offsets(cost: Tensor, assignment: Tensor, k: int) -> tuple[Tensor, float]:
    """Offsets reproducing ``assignment`` as power cells with the largest uniform margin, and it.

    Needs ``w_l - w_j <= D[j, l] - margin`` for all edges: feasible for ``margin`` up to the minimum
    cycle mean of the exchange graph; we take half of it (capped) and shortest-path potentials.
    """
    d = exchange_costs(cost, assignment, k).numpy()
    if k == 1:
        return torch.zeros(1, dtype=torch.float64), float("inf")
    mu = _min_cycle_mean(d)
    finite_d = d[np.isfinite(d)]
    cap = float(np.abs(finite_d).max()) + 1.0 if finite_d.size else 1.0
    margin = max(0.0, min(mu, cap))
    dist, _ = _bellman_ford(d - margin / 2, np.ones(k, dtype=bool))
    w = torch.from_numpy(dist - dist.mean())
    return w, margin / 2


def balanced_partition(
    cost: Tensor,  # [n, k] cost of point i in cell j (float64 recommended)
    capacities: Tensor | None = None,  # [k] points per cell (default balanced_capacities(n, k))
    offsets: Tensor | None = None,  # [k] warm start (e.g. last partition's offsets)
    n_sweeps: int = 20,  # dual coordinate-ascent sweeps before the exact repair
) -> Partition:
    """Exact optimal transport assignment of ``n`` points to ``k`` cells of given sizes (see module doc)."""
    cost = cost.double().cpu()
    n, k = cost.shape
    caps = balanced_capacities(n, k) if capacities is None else capacities.long().cpu()
    if int(caps.sum()) != n or bool((caps < 0).any()):
        raise ValueError(f"capacities must be >= 0 and sum to n={n}; got {caps.tolist()}")
    if k == 1:
        assignment = torch.zeros(n, dtype=torch.long)
        return Partition(assignment, torch.zeros(1, dtype=torch.float64), caps.clone(), float(cost.sum()), float("inf"))
    w0 = torch.zeros(k, dtype=torch.float64) if offsets is None else offsets.double().cpu()
    w = _gauss_seidel_sweeps(cost, caps, w0, n_sweeps)
    assignment = _repair_balance(cost, power_assign(cost, w), caps)
    w, margin = margin_offsets(cost, assignment, k)
    counts = torch.bincount(assignment, minlength=k)
    total = float(cost.gather(1, assignment[:, None]).sum())
    return Partition(assignment, w, counts, total, margin)


# -- sites: seeding, centroids, medoids, re-seeding --------------------------------------------
def kmeans_pp_sites(features: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    """k-means++ seeding: first site uniform, next ones with probability ~ squared distance."""
    n = features.shape[0]
    if n < k:
        raise ConfigError(f"cannot seed model.k={k} sites from {n} training images; use model.k<={n}")
    return features.double().cpu()[kmeans_pp(features, k, generator)].to(features.dtype)


def cell_centroids(features: Tensor, assignment: Tensor, k: int, previous: Tensor | None = None) -> Tensor:
    """Mean feature of every cell (a Lloyd step); empty cells keep ``previous`` (or get zeros)."""
    x = features.double()
    sums = torch.zeros(k, x.shape[1], dtype=torch.float64).index_add_(0, assignment, x)
    counts = torch.bincount(assignment, minlength=k)
    cent = sums / counts.clamp(min=1)[:, None].double()
    if previous is not None:
        cent[counts == 0] = previous.double()[counts == 0]
    return cent.to(features.dtype)


def cell_medoids(features: Tensor, assignment: Tensor, k: int) -> Tensor:
    """Index of each cell's medoid (-1 for empty cells).

    For squared Euclidean cost ``sum_{i in cell} ||x_i - x_m||^2 = |cell| ||x_m - mean||^2 + const``,
    so the medoid is exactly the member closest to the cell centroid (no quadratic search).
    """
    cent = cell_centroids(features, assignment, k)
    d2 = squared_distances(features, cent).gather(1, assignment[:, None])[:, 0]
    out = torch.full((k,), -1, dtype=torch.long)
    for j in range(k):
        members = torch.nonzero(assignment == j).flatten()
        if members.numel():
            out[j] = members[torch.argmin(d2[members])]
    return out


def reseed_empty_sites(features: Tensor, sites: Tensor, assignment: Tensor) -> tuple[Tensor, list[int]]:
    """Move the site of every empty cell onto the point farthest from its own site (k-means fix).

    Returns the new sites and the re-seeded cell ids. Each re-seed takes a different point.
    """
    k = sites.shape[0]
    counts = torch.bincount(assignment, minlength=k)
    empty = torch.nonzero(counts == 0).flatten().tolist()
    if not empty:
        return sites, []
    own = squared_distances(features, sites).gather(1, assignment[:, None])[:, 0]
    order = torch.argsort(own, descending=True)
    new = sites.clone()
    for j, i in zip(empty, order[: len(empty)].tolist()):
        new[j] = features[i].to(sites.dtype)
    return new, empty


def voronoi_partition(features: Tensor, sites: Tensor) -> Partition:
    """Unbalanced (plain Voronoi, zero offsets) partition; cells may be empty."""
    cost = squared_distances(features, sites)
    k = sites.shape[0]
    a = power_assign(cost, torch.zeros(k, dtype=torch.float64))
    total = float(cost.gather(1, a[:, None]).sum())
    return Partition(a, torch.zeros(k, dtype=torch.float64), torch.bincount(a, minlength=k), total, 0.0)


def update_partition(
    features: Tensor,  # [n, d] point features
    sites: Tensor,  # [k, d] current sites
    offsets: Tensor | None = None,  # [k] warm start
    balanced: bool = True,  # False: plain Voronoi cells (k-means), empty cells re-seeded
    n_sweeps: int = 20,
) -> tuple[Partition, Tensor, list[int]]:
    """Assign points to cells for fixed sites; returns ``(partition, sites, reseeded_cells)``.

    Balanced partitions never have empty cells (``n >= k``); Voronoi ones re-seed empty cells and
    re-assign, up to ``k`` times.
    """
    if balanced:
        return balanced_partition(squared_distances(features, sites), offsets=offsets, n_sweeps=n_sweeps), sites, []
    reseeded: list[int] = []
    part = voronoi_partition(features, sites)
    for _ in range(sites.shape[0]):
        sites, empty = reseed_empty_sites(features, sites, part.assignment)
        if not empty:
            break
        reseeded += empty
        part = voronoi_partition(features, sites)
    return part, sites, reseeded


__all__ = [
    "FEATURE_SPACES",
    "Partition",
    "balanced_capacities",
    "balanced_partition",
    "cell_centroids",
    "cell_medoids",
    "exchange_costs",
    "kmeans_pp_sites",
    "margin_offsets",
    "pixel_features",
    "power_assign",
    "reseed_empty_sites",
    "squared_distances",
    "update_partition",
    "voronoi_partition",
]
