"""Structural similarity (SSIM, Wang et al. 2004) of generated and real images: closeness and diversity.

SSIM itself is torchmetrics' (Gaussian window 11 px, sigma 1.5, data range [0, 1]); this module only
decides which images are compared:

* ``nn_fake`` - mean, over ``queries`` generated images, of the SSIM to their nearest real image
  (the best SSIM among the ``candidates`` real images nearest in pixels; an exhaustive SSIM search
  would cost ``N * M`` SSIMs);
* ``nn_real`` - the same for ``queries`` real images against the *other* real images: the floor a
  generator that samples the real distribution reaches (a copier of these very images scores 1 on
  ``nn_fake``; a generator of noise or smears scores far below ``nn_real``);
* ``pairs_fake`` / ``pairs_real`` - mean SSIM over ``pairs`` random pairs of distinct images within
  each set: intra-set similarity, the inverse of diversity. A collapsed generator (one image over
  and over) scores 1; a diverse one about ``pairs_real``.

Read ``nn_fake`` together with ``pairs_fake``: flat, smeared images match a poster's luminance over
its flat regions, so a DCGAN at initialisation (near-constant grey outputs) scored ``nn_fake`` 0.48
above the real floor ``nn_real`` 0.44 on 32 px synthetic posters - and ``pairs_fake`` 0.99 against
``pairs_real`` 0.07, which is what gives it away.

The images are whatever the caller passes (the metrics runner: uint8, pooled to ``image_size`` px).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure

from gan_interp.metrics.memorisation import k_nearest

SSIM_KEYS = ("nn_fake", "nn_real", "pairs_fake", "pairs_real")
WINDOW = 11  # side of the Gaussian window (Wang et al. 2004)


def _unit(images: Tensor) -> Tensor:
    """uint8 [0, 255] or float [-1, 1] images -> float [0, 1]."""
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    return (images.float() + 1.0) / 2.0


def ssim_per_pair(a: Tensor, b: Tensor, kernel_size: int = WINDOW, sigma: float = 1.5, chunk: int = 512) -> Tensor:
    """``[n]``: SSIM of ``a[i]`` with ``b[i]`` (images in [0, 1], ``[n, C, H, W]``), in chunks."""
    out = [
        structural_similarity_index_measure(
            a[i0 : i0 + chunk],
            b[i0 : i0 + chunk],
            kernel_size=kernel_size,
            sigma=sigma,
            data_range=1.0,
            reduction="none",
        )
        for i0 in range(0, a.shape[0], chunk)
    ]
    return torch.cat(out) if out else torch.empty(0)


def _nearest_ssim(query: Tensor, gallery: Tensor, candidates: int, self_idx: Tensor | None, **ssim_kw: float) -> Tensor:
    """``[q]``: best SSIM of each query among its ``candidates`` pixel-nearest gallery images.

    ``self_idx`` (queries taken from the gallery): each query's own gallery position, never its own neighbour.
    """
    k = min(candidates + int(self_idx is not None), gallery.shape[0])
    _, idx = k_nearest(query, gallery, k)
    if self_idx is not None:  # drop the query itself (found wherever distance ties put it), keep k - 1
        not_self_first = (idx == self_idx[:, None]).to(torch.int8).argsort(dim=1, stable=True)
        idx = idx.gather(1, not_self_first[:, : k - 1])
    q = query.unsqueeze(1).expand(-1, idx.shape[1], *query.shape[1:]).reshape(-1, *query.shape[1:])
    s = ssim_per_pair(q, gallery[idx.reshape(-1)], **ssim_kw)
    return s.reshape(idx.shape).max(1).values


def _random_pairs(n: int, pairs: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """``pairs`` index pairs ``(i, j)`` with ``i != j`` drawn uniformly from ``range(n)``."""
    i = torch.randint(n, (pairs,), generator=g)
    j = (i + torch.randint(1, n, (pairs,), generator=g)) % n  # a uniform j != i
    return i, j


def ssim_scores(
    real: Tensor,  # [N, C, H, W] real images (uint8 or [-1, 1] float)
    fake: Tensor,  # [M, C, H, W] generated images, same size
    queries: int = 256,  # images per set whose nearest real image is looked up
    candidates: int = 3,  # pixel-nearest real images compared by SSIM per query
    pairs: int = 512,  # random pairs per set for the intra-set SSIM
    kernel_size: int = WINDOW,  # Gaussian window side (must not exceed the image side)
    sigma: float = 1.5,  # Gaussian window sd
    seed: int = 0,  # which queries and pairs
) -> dict[str, float]:
    """``nn_fake``, ``nn_real``, ``pairs_fake``, ``pairs_real`` (see the module doc)."""
    if real.shape[0] < 2 or fake.shape[0] < 2:
        raise ValueError(f"SSIM scores need >= 2 images per set, got {real.shape[0]} real, {fake.shape[0]} fake")
    if min(real.shape[-2:]) < kernel_size:
        raise ValueError(f"images of {tuple(real.shape[-2:])} px are smaller than the SSIM window {kernel_size}")
    real, fake = _unit(real), _unit(fake)
    kw = {"kernel_size": int(kernel_size), "sigma": float(sigma)}
    g = torch.Generator().manual_seed(seed)
    q_fake = torch.randperm(fake.shape[0], generator=g)[: int(queries)]
    q_real = torch.randperm(real.shape[0], generator=g)[: int(queries)]
    nn_fake = _nearest_ssim(fake[q_fake], real, int(candidates), None, **kw)
    nn_real = _nearest_ssim(real[q_real], real, int(candidates), q_real, **kw)
    out = {"nn_fake": float(nn_fake.mean()), "nn_real": float(nn_real.mean())}
    for name, images in (("fake", fake), ("real", real)):
        i, j = _random_pairs(images.shape[0], int(pairs), torch.Generator().manual_seed(seed + 1))
        out[f"pairs_{name}"] = float(ssim_per_pair(images[i], images[j], **kw).mean())
    return out
