"""k-means in one place: exact squared distances, k-means++ seeding, Lloyd iterations.

Used by the k-GAN partition (sites of the optimal-transport cells), the Interpretable-GAN filter
grouping (initial mixture means) and the domain feature net (pseudo-classes for IS). All distances
are computed in float64 without the ``|x|^2 + |y|^2 - 2xy`` matrix trick, so ties and seeding draws
do not depend on the batch size or the BLAS in use.
"""

from __future__ import annotations

import torch
from torch import Tensor


def squared_distances(x: Tensor, y: Tensor) -> Tensor:
    """``[n, m]`` squared Euclidean distances between the rows of ``x [n, d]`` and ``y [m, d]`` (float64)."""
    return torch.cdist(x.double(), y.double(), compute_mode="donot_use_mm_for_euclid_dist").pow(2)


def kmeans_pp(x: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): indices ``[k]`` of rows of ``x [n, d]``.

    The first seed is uniform, each next one is drawn with probability proportional to its squared
    distance to the nearest seed so far. When every remaining row coincides with a seed, the first
    unused row is taken (no draw). Needs ``k <= n``.
    """
    x = x.double().cpu()
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k-means++ needs 1 <= k <= n rows; got k={k}, n={n}")
    idx = [int(torch.randint(n, (1,), generator=generator))]
    d2 = squared_distances(x, x[idx]).amin(1)
    for _ in range(1, k):
        total = float(d2.sum())
        if total <= 0:
            unused = torch.ones(n, dtype=torch.bool)
            unused[idx] = False
            idx.append(int(torch.nonzero(unused)[0]))
        else:
            idx.append(int(torch.multinomial(d2 / total, 1, generator=generator)))
        d2 = torch.minimum(d2, squared_distances(x, x[idx[-1:]])[:, 0])
    return torch.tensor(idx, dtype=torch.long)


def lloyd(x: Tensor, centroids: Tensor, iters: int) -> Tensor:
    """``iters`` Lloyd rounds from ``centroids [k, d]``: assign to the nearest, move to the mean.

    An empty cluster keeps its centroid. Returns the new centroids in ``x``'s dtype.
    """
    cent = centroids.to(x.dtype).clone()
    for _ in range(iters):
        assign = squared_distances(x, cent).argmin(1)
        for j in range(cent.shape[0]):
            members = x[assign == j]
            if len(members):
                cent[j] = members.mean(0)
    return cent


def kmeans(x: Tensor, k: int, iters: int = 25, seed: int = 0) -> Tensor:
    """Centroids ``[min(k, n), d]`` of ``x [n, d]``: k-means++ seeding (seeded), then Lloyd rounds."""
    g = torch.Generator().manual_seed(seed)
    k = min(k, x.shape[0])
    return lloyd(x, x[kmeans_pp(x, k, g)], iters)
