"""Nearest-neighbour memorisation score.

For every generated sample we find its nearest training image (Euclidean, in pixel or feature
space) and compare those distances with the nearest-training-image distances of *held-out* real
images (which the generator never saw). A generator that copies its training set produces fakes
much closer to the training set than fresh real images are:

* ``nn_ratio = median d(fake, train) / median d(heldout, train)`` - about 1 for a generator that
  samples the data distribution, -> 0 for one that memorises, > 1 for fakes off the data manifold;
* ``copy_fraction`` - share of fakes that sit unusually close to *one particular* training image:
  their 1st/2nd-nearest-neighbour distance ratio is below the ``quantile`` of the held-out
  images' ratios (about ``quantile`` when not memorising, -> 1 when copying). The ratio test
  keeps blurry "average" fakes, which are close to everything but to nothing in particular,
  from counting as copies.

Distances are computed in chunks with a running top-k merge (memory ``O(chunk_q * chunk_r)``).
"""

from __future__ import annotations

import torch
from torch import Tensor


def k_nearest(
    queries: Tensor,  # [n, ...] points to look up (flattened)
    refs: Tensor,  # [m, ...] reference set (flattened)
    k: int = 1,  # neighbours per query
    chunk: int = 1024,  # block side: memory ~ chunk^2 distances
) -> tuple[Tensor, Tensor]:
    """Distances ``[n, k]`` (ascending) to and indices ``[n, k]`` of the ``k`` nearest reference points."""
    q = queries.reshape(queries.shape[0], -1).float()
    r = refs.reshape(refs.shape[0], -1).float()
    k = min(k, r.shape[0])
    best_d = torch.full((q.shape[0], k), float("inf"), device=q.device)
    best_i = torch.zeros(q.shape[0], k, dtype=torch.long, device=q.device)
    r_sq = r.pow(2).sum(1)
    for i0 in range(0, q.shape[0], chunk):
        qi = q[i0 : i0 + chunk]
        qi_sq = qi.pow(2).sum(1, keepdim=True)
        for j0 in range(0, r.shape[0], chunk):
            d2 = (qi_sq + r_sq[None, j0 : j0 + chunk] - 2.0 * qi @ r[j0 : j0 + chunk].T).clamp_min_(0.0)
            cand_d = torch.cat([best_d[i0 : i0 + chunk], d2], dim=1)
            cand_i = torch.cat(
                [best_i[i0 : i0 + chunk], torch.arange(j0, j0 + d2.shape[1], device=q.device).expand_as(d2)], dim=1
            )
            top_d, pos = cand_d.topk(k, dim=1, largest=False)  # running merge keeps memory bounded
            best_d[i0 : i0 + chunk], best_i[i0 : i0 + chunk] = top_d, cand_i.gather(1, pos)
    return best_d.sqrt(), best_i


def nearest_neighbours(queries: Tensor, refs: Tensor, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """Distance ``[n]`` to and index ``[n]`` of the nearest reference point of every query."""
    d, i = k_nearest(queries, refs, 1, chunk)
    return d[:, 0], i[:, 0]


def memorisation_score(
    fake: Tensor,  # [n, ...] generated samples
    train: Tensor,  # [m, ...] training samples the generator was fitted to
    heldout: Tensor,  # [k, ...] real samples not used for training
    quantile: float = 0.05,  # threshold quantile of the held-out ratios for copy_fraction
    chunk: int = 1024,
) -> dict[str, float]:
    """``nn_fake_median``, ``nn_heldout_median``, ``nn_ratio`` and ``copy_fraction`` (see module doc)."""
    d_fake, _ = k_nearest(fake, train, 2, chunk)
    d_held, _ = k_nearest(heldout, train, 2, chunk)
    med_fake, med_held = float(d_fake[:, 0].median()), float(d_held[:, 0].median())
    r_fake = (d_fake[:, 0] / d_fake[:, -1].clamp_min(1e-12)).double()
    r_held = (d_held[:, 0] / d_held[:, -1].clamp_min(1e-12)).double()
    threshold = float(torch.quantile(r_held, quantile))
    return {
        "nn_fake_median": med_fake,
        "nn_heldout_median": med_held,
        "nn_ratio": med_fake / med_held if med_held > 0 else float("nan"),
        "copy_fraction": float((r_fake < threshold).double().mean()),
    }
