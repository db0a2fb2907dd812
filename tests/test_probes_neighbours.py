"""Chunked nearest neighbours and medoids equal brute force; filters/members probes."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from gan_interp.models import DCGAN
from gan_interp.probes.context import ProbeContext
from gan_interp.probes.filters import filter_images, filter_stats, filters_probe
from gan_interp.probes.members import members_probe
from gan_interp.probes.neighbours import chunks_of, medoid, nearest_neighbours
from gan_interp.probes.registry import get_probe
from gan_interp.probes.runner import run_probes


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_chunked_nearest_neighbours_match_brute_force(chunk):
    g = torch.Generator().manual_seed(0)
    queries, refs = torch.randn(9, 2, 4, 4, generator=g), torch.randn(50, 2, 4, 4, generator=g)
    d_full = torch.cdist(queries.flatten(1), refs.flatten(1))
    dist, idx = nearest_neighbours(queries, refs, k=3, chunk_size=chunk)
    assert torch.equal(idx[:, 0], d_full.argmin(1))
    ref_d, ref_i = d_full.topk(3, dim=1, largest=False)
    assert torch.equal(idx, ref_i) and torch.allclose(dist, ref_d, atol=1e-5)
    # the same through an iterator of chunks (how the probe streams the training set)
    dist2, idx2 = nearest_neighbours(queries, chunks_of(refs, chunk), k=3)
    assert torch.equal(idx2, ref_i)


def test_k_larger_than_references_and_self_match():
    refs = torch.randn(2, 5)
    dist, idx = nearest_neighbours(refs, refs, k=4, chunk_size=1)
    assert (
        idx.shape == (2, 2)
        and torch.equal(idx[:, 0], torch.arange(2))
        and torch.allclose(dist[:, 0], torch.zeros(2), atol=1e-3)
    )


def test_medoid_matches_brute_force():
    x = torch.randn(23, 6, generator=torch.Generator().manual_seed(3))
    assert medoid(x, chunk_size=4) == int(torch.cdist(x, x).sum(1).argmin())
    pts = torch.tensor([[0.0], [1.0], [2.0], [10.0]])
    assert medoid(pts) == 1  # summed distances 13, 11, 11, 37: the first of the tie


def test_filter_images_and_neutral_share():
    w = torch.zeros(2, 3, 2, 2)
    w[0] = torch.tensor([[1.0, -1.0], [1.0, -1.0]])  # same edge in R, G, B: colour neutral
    w[1, 0], w[1, 1] = 1.0, -1.0  # red vs green: colour opponent, no neutral part
    stats = filter_stats(w)
    assert stats["neutral_share"] == pytest.approx([1.0, 0.0])
    tiles = filter_images(w)
    assert tiles.shape == (2, 3, 2, 2) and tiles.min() == 0 and tiles.max() == 1
    assert filter_images(torch.randn(4, 2, 3, 3)).shape == (8, 3, 3, 3)  # non-RGB: one gray tile per input channel


def test_filters_probe_and_members_skip(tmp_path):
    model = DCGAN(latent_dim=8, ngf=8, ndf=8, resolution=32)
    s = filters_probe(ProbeContext.create("filters", model, None, tmp_path))
    assert s["weight_shape"] == [8, 3, 4, 4] and 0 <= s["mean_neutral_share"] <= 1
    assert (tmp_path / "filters" / "first_layer.png").is_file()
    # a model without members: the runner does not call the members probe and says why
    assert get_probe("members").unmet(model, None) == "model has no k-GAN members"
    assert run_probes(model, None, {"members": {}}, tmp_path / "run", 0) == {}
    skipped = json.loads((tmp_path / "run" / "probes.json").read_text())["skipped"]
    assert skipped == {"members": "model has no k-GAN members"}
    assert not (tmp_path / "run" / "members").exists()


class _TwoMembers(DCGAN):
    """A k-GAN stand-in: member j shifts the image brightness by j."""

    n_members = 2

    def member_view(self, j):
        return SimpleNamespace(generate=lambda z: (self.generate(z) * 0.1 + (j - 0.5)).clamp(-1, 1))


def test_members_probe_medoids(tmp_path):
    model = _TwoMembers(latent_dim=8, ngf=8, ndf=8, resolution=32).eval()
    with torch.no_grad():
        s = members_probe(ProbeContext.create("members", model, None, tmp_path), n=3, n_medoid=5)
    assert s["k"] == 2 and set(s["members"]) == {"0", "1"}
    assert s["medoid_distances"][0][1] > 10  # the members' medoids differ by a brightness shift of 1
    assert (tmp_path / "members" / "sample_medoids.png").is_file() and (tmp_path / "members" / "samples.png").is_file()
