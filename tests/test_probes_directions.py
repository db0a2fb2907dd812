"""SeFa and PCA known answers; GANSpace recovers a planted direction; the directions probe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_interp.models import DCGAN
from gan_interp.probes.context import ProbeContext
from gan_interp.probes.directions import (
    directions_probe,
    ganspace_directions,
    pca,
    random_directions,
    sefa_directions,
    sefa_matrix,
)


def test_sefa_directions_are_orthonormal_eigenvectors_of_ata():
    model = DCGAN(latent_dim=16, ngf=8, ndf=8, resolution=32)
    weight, space = model.sefa_weight()
    assert space == "z" and weight.shape == (16, 32, 4, 4)  # DCGAN's first ConvTranspose2d [nz, C, 4, 4]
    for normalize in (False, True):
        a = sefa_matrix(weight, normalize=normalize)
        assert a.shape == (32 * 16, 16)  # [C*kh*kw, nz]: inputs are z coordinates
        evals, v = sefa_directions(a, k=16)
        ata = (a.T @ a).float()
        assert torch.allclose(v @ v.T, torch.eye(16), atol=1e-5)  # V^T V = I (rows are the directions)
        assert torch.allclose(ata @ v.T, v.T * evals, atol=1e-4 * evals.max())  # A^T A v = lambda v
        assert (evals[:-1] >= evals[1:]).all()  # sorted, largest first
    # normalize=True: every output unit's row has unit norm (official SeFa)
    assert torch.allclose(sefa_matrix(weight).norm(dim=1), torch.ones(32 * 16, dtype=torch.float64))
    # a Linear weight [out, in] is used as is
    lin = nn.Linear(5, 9, bias=False)
    assert torch.equal(sefa_matrix(lin.weight, normalize=False), lin.weight.double())


def test_sefa_top_direction_is_the_dominant_input_of_a_planted_layer():
    w = torch.eye(6)[:, :6] * torch.tensor([1.0, 1.0, 10.0, 1.0, 1.0, 1.0])  # input 2 is amplified 10x
    evals, v = sefa_directions(sefa_matrix(w, normalize=False), k=2)
    assert evals[0].item() == pytest.approx(100.0) and v[0].abs().argmax().item() == 2


def test_pca_orthonormal_and_matches_svd():
    g = torch.Generator().manual_seed(0)
    for n, p in [(30, 8), (8, 30)]:  # both Gram branches
        x = torch.randn(n, p, generator=g, dtype=torch.float64) * torch.linspace(0.5, 3, p, dtype=torch.float64)
        mean, comps, var, ratio = pca(x, k=5)
        assert torch.allclose(comps @ comps.T, torch.eye(5), atol=1e-5)
        _, s, vh = torch.linalg.svd(x - x.mean(0), full_matrices=False)
        assert torch.allclose(var.double(), (s[:5] ** 2 / (n - 1)), rtol=1e-4)
        assert torch.allclose((comps.double() @ vh[:5].T).abs().diag(), torch.ones(5, dtype=torch.float64), atol=1e-4)
        assert ratio.sum() <= 1.0 + 1e-6 and torch.allclose(mean.double(), x.mean(0).float().double(), atol=1e-6)
    _, comps, _, _ = pca(torch.randn(4, 10, generator=g), k=8)  # rank 3 after centring
    assert comps.shape[0] == 3


def test_random_directions_are_unit_vectors():
    d = random_directions(4, 7, torch.Generator().manual_seed(0))
    assert d.shape == (4, 7) and torch.allclose(d.norm(dim=1), torch.ones(4))


class _PlantedW(nn.Module):
    """A StyleGAN-like stub: w = z * scales (so w's first principal direction is axis 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.latent_dim, self.n_ws = 6, 3
        self.register_buffer("scales", torch.tensor([5.0, 1.0, 1.0, 0.5, 0.5, 0.5]))

    @property
    def device(self):
        return self.scales.device

    def sample_z(self, n, generator=None):
        return torch.randn(n, self.latent_dim, generator=generator)

    def mapping(self, z):
        return z * self.scales

    def synthesize(self, ws):
        return ws.mean(1)[:, :3].reshape(-1, 3, 1, 1).expand(-1, 3, 4, 4).tanh()

    def generate(self, z):
        return self.synthesize(self.mapping(z).unsqueeze(1).repeat(1, 3, 1))

    def generator_layers(self):
        return {}


def test_ganspace_in_w_finds_the_planted_axis():
    dirs, ratio, space = ganspace_directions(_PlantedW(), "w", None, n_samples=512, k=2, seed=0)
    assert space == "w" and dirs[0].abs().argmax().item() == 0 and ratio[0] > 0.7


def test_ganspace_on_activations_maps_back_to_z():
    model = DCGAN(latent_dim=8, ngf=8, ndf=8, resolution=32).eval()
    with torch.no_grad():
        dirs, ratio, space = ganspace_directions(model, "activations", "block0", n_samples=64, k=3, seed=0)
    assert space == "z" and dirs.shape == (3, 8) and torch.allclose(dirs.norm(dim=1), torch.ones(3), atol=1e-5)
    assert (ratio[:-1] >= ratio[1:]).all()


def test_directions_probe_writes_discovered_and_control_grids(tmp_path):
    model = DCGAN(latent_dim=8, ngf=8, ndf=8, resolution=32).eval()
    with torch.no_grad():
        s = directions_probe(ProbeContext.create("directions", model, None, tmp_path), k=2, steps=3, n_samples=16)
    names = {p.name for p in (tmp_path / "directions").iterdir()}
    assert {
        "sefa.png",
        "sefa_random_control.png",
        "ganspace.png",
        "ganspace_random_control.png",
        "summary.json",
    } <= names
    assert (
        s["sefa"]["space"] == "z" and len(s["sefa"]["eigenvalues"]) == 2 and s["ganspace"]["pca_space"] == "activations"
    )
    assert s["sefa"]["effect_ratio_vs_random"] > 0
