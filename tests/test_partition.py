"""Balanced power-cell partitions (semi-discrete OT) against POT's exact solver and known answers."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from gan_interp.errors import ConfigError
from gan_interp.models import partition as P


def _emd_plan(cost: torch.Tensor, caps: torch.Tensor) -> np.ndarray:
    n = cost.shape[0]
    return ot.emd(np.full(n, 1.0 / n), caps.double().numpy() / n, cost.numpy())


@pytest.mark.parametrize("n, k, seed", [(60, 3, 0), (60, 3, 1), (40, 4, 2), (90, 5, 3), (30, 2, 4)])
def test_assignment_equals_exact_ot_on_2d_points(n, k, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    sites = 0.5 * torch.randn(k, 2, generator=g, dtype=torch.float64)  # deliberately unbalanced Voronoi cells
    cost = P.squared_distances(x, sites)
    part = P.balanced_partition(cost, n_sweeps=2)
    caps = P.balanced_capacities(n, k)
    plan = _emd_plan(cost, caps)
    # n divisible by k: the exact plan is a hard assignment (integral vertex of the transport polytope)
    assert np.allclose(plan.max(1), 1.0 / n) and np.count_nonzero(plan > 1e-12) == n
    assert torch.equal(part.assignment, torch.from_numpy(plan.argmax(1)))
    assert torch.equal(part.counts, torch.full((k,), n // k))  # balanced exactly
    assert part.cost == pytest.approx(float((plan * cost.numpy()).sum() * n), rel=1e-12)
    # the returned offsets are power cells reproducing the assignment, with a positive margin
    assert part.margin > 0
    assert torch.equal(P.power_assign(cost, part.offsets), part.assignment)
    gap = (cost - part.offsets).sort(1).values
    assert float((gap[:, 1] - gap[:, 0]).min()) >= part.margin - 1e-12
    # plain Voronoi cells of these sites are not balanced: the offsets did the work
    assert not torch.equal(torch.bincount(cost.argmin(1), minlength=k), part.counts)


def test_uneven_sizes_and_duplicate_points_still_optimal():
    g = torch.Generator().manual_seed(5)
    base = torch.randn(25, 2, generator=g, dtype=torch.float64)
    x = torch.cat([base, base])  # every point twice: ties everywhere
    sites = torch.randn(4, 2, generator=g, dtype=torch.float64)
    cost = P.squared_distances(x, sites)
    part = P.balanced_partition(cost)
    caps = P.balanced_capacities(50, 4)
    assert caps.tolist() == [13, 13, 12, 12]
    assert torch.equal(part.counts, caps)
    plan = _emd_plan(cost, caps)
    assert part.cost == pytest.approx(float((plan * cost.numpy()).sum() * 50), rel=1e-10)


def test_known_answer_on_a_line():
    # sites both left of the points: Voronoi puts everything into cell 1; balanced OT splits at the
    # middle because c(x, s0) - c(x, s1) = 2x + 19 grows with x (far points go to the nearer site s1)
    x = torch.arange(6, dtype=torch.float64)[:, None]
    sites = torch.tensor([[-10.0], [-9.0]], dtype=torch.float64)
    cost = P.squared_distances(x, sites)
    assert cost.argmin(1).tolist() == [1] * 6
    part = P.balanced_partition(cost)
    assert part.assignment.tolist() == [0, 0, 0, 1, 1, 1]
    # the power-cell boundary lies between x=2 and x=3: w1 - w0 in (2*2+19, 2*3+19)
    assert 23.0 < float(part.offsets[0] - part.offsets[1]) < 25.0


def test_warm_start_gives_the_same_partition_and_larger_k_scales():
    g = torch.Generator().manual_seed(6)
    x, sites = torch.rand(3000, 12, generator=g), torch.rand(7, 12, generator=g)
    cost = P.squared_distances(x, sites)
    cold = P.balanced_partition(cost)
    warm = P.balanced_partition(cost, offsets=cold.offsets, n_sweeps=0)
    assert torch.equal(cold.assignment, warm.assignment)
    assert cold.counts.tolist() == P.balanced_capacities(3000, 7).tolist()
    assert P.exchange_costs(cost, cold.assignment, 7).shape == (7, 7)


def test_voronoi_mode_reseeds_empty_cells():
    x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0]])
    sites = torch.tensor([[100.0, 100.0], [0.0, 0.0]])  # site 0 attracts nothing
    assert P.voronoi_partition(x, sites).counts.tolist() == [0, 4]
    part, new_sites, reseeded = P.update_partition(x, sites, balanced=False)
    assert reseeded == [0]
    assert new_sites[0].tolist() == [5.0, 5.0]  # the point farthest from its own site
    assert part.counts.tolist() == [1, 3]
    same, _, none = P.update_partition(x, new_sites, balanced=False)
    assert none == [] and torch.equal(same.assignment, part.assignment)


def test_centroids_medoids_and_seeding():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(40, 3, generator=g)
    a = torch.arange(40) % 4
    cent = P.cell_centroids(x, a, 4)
    assert torch.allclose(cent[1], x[a == 1].mean(0), atol=1e-6)
    med = P.cell_medoids(x, a, 4)
    for j in range(4):  # brute-force medoid: member minimising the summed squared distance
        members = torch.nonzero(a == j).flatten()
        total = torch.cdist(x[members], x[members]).pow(2).sum(1)
        assert int(med[j]) == int(members[total.argmin()])
    s1 = P.kmeans_pp_sites(x, 4, torch.Generator().manual_seed(0))
    s2 = P.kmeans_pp_sites(x, 4, torch.Generator().manual_seed(0))
    assert torch.equal(s1, s2) and len({tuple(r.tolist()) for r in s1}) == 4  # distinct data points
    with pytest.raises(ConfigError, match="model.k"):
        P.balanced_capacities(2, 3)


def test_pixel_features():
    imgs = torch.zeros(2, 3, 32, 32)
    imgs[1, 0] = 1.0
    f = P.pixel_features(imgs, 8)
    assert f.shape == (2, 3 * 64) and float(f[1, :64].mean()) == 1.0 and float(f[1, 64:].abs().sum()) == 0.0
    gray = P.pixel_features(imgs, 4, "gray")
    assert gray.shape == (2, 16) and torch.allclose(gray[1], torch.full((16,), 0.299))
    with pytest.raises(ConfigError, match="feature_space"):
        P.pixel_features(imgs, 4, "vgg")


# -- the k-GAN partition co-evolving with the generators (issue 16 point 1) --------------------------
def _two_clusters() -> tuple[torch.Tensor, torch.Tensor]:
    """16 gray images: 8 at -0.8, 8 at +0.8 (tiny noise), and their 8x8 OT features."""
    g = torch.Generator().manual_seed(0)
    levels = torch.tensor([-0.8] * 8 + [0.8] * 8)
    images = levels[:, None, None, None] + 0.01 * torch.randn(16, 1, 32, 32, generator=g)
    return images, P.pixel_features(images, 8)


def _member_draws(model, j: int, level: float) -> None:
    """Member j's generator makes a constant image at ``level`` (zero last-layer weights, bias atanh(level))."""
    last = model.generators.stages["to_image"][0]  # grouped ConvTranspose2d, one output channel per member
    with torch.no_grad():
        last.weight[j].zero_()
        last.bias[j] = float(np.arctanh(level))


@pytest.mark.parametrize("sites_from", ["generated", "data"])
def test_the_partition_follows_generators_set_to_the_opposite_clusters(sites_from):
    from gan_interp.models.kgan import KGAN

    torch.manual_seed(0)
    model = KGAN(latent_dim=8, k=2, ngf=4, ndf=4, resolution=32, channels=1, sites_from=sites_from, site_samples=8)
    images, feats = _two_clusters()
    rows = torch.arange(16)
    model._features = (feats, rows, list(range(16)))  # the training split's features (no trainer needed)
    model.update_partition(0)  # epoch 0: k-means on the data, the clusters are the cells
    low = int(model.partition.row_to_member[0])
    assert model.partition.row_to_member.tolist() == [low] * 8 + [1 - low] * 8
    # the member owning the dark cluster now draws bright images and the other one dark images
    _member_draws(model, low, 0.8)
    _member_draws(model, 1 - low, -0.8)
    assert torch.allclose(model.generated_sites(1)[low], torch.full((64,), 0.8), atol=1e-5)
    model.update_partition(1)
    stats = model.partition.stats
    if sites_from == "generated":  # the cells follow the generators: every image changed cell
        assert model.partition.row_to_member.tolist() == [1 - low] * 8 + [low] * 8
        assert stats["rows_changed"] == 16.0 and stats["rows_changed_fraction"] == 1.0
        assert stats["site_shift"] == pytest.approx(1.6 * 8, rel=1e-2)  # each site crossed 0.8 -> -0.8 (64 dims)
        assert torch.allclose(model.partition.sites[low], torch.full((64,), 0.8), atol=1e-5)
    else:  # data-only: the generators never move the cells
        assert model.partition.row_to_member.tolist() == [low] * 8 + [1 - low] * 8
        assert stats["rows_changed"] == 0.0 and stats["site_shift"] < 1e-6
    spread = float(((feats - model.partition.sites[model.partition.row_to_member]) ** 2).sum(1).mean())
    assert stats["ot_cost"] == pytest.approx(spread, rel=1e-4)  # mean squared distance to the own site


def test_sites_from_must_be_known():
    from gan_interp.models.kgan_partition import KGANPartition

    with pytest.raises(ConfigError, match=r"model.sites_from='gen'.*generated, data"):
        KGANPartition(2, channels=1, sites_from="gen")
