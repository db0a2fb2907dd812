"""SmoothGrad known answer (linear critic) and the saliency probe's outputs."""

from __future__ import annotations

import json

import torch

from gan_interp.models import DCGAN
from gan_interp.probes.context import ProbeContext
from gan_interp.probes.saliency import concept_shares, saliency_maps, saliency_probe, smoothgrad


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten().double(), b.flatten().double()]))[0, 1])


def test_smoothgrad_of_a_linear_critic_is_its_weight_map():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3 * 16 * 16, generator=g)
    critic = lambda x: x.flatten(1) @ w  # noqa: E731  D(x) = <w, x>, no bias
    x = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    attr = smoothgrad(critic, x, nt_samples=6, stdevs=0.3, nt_samples_batch_size=5, absolute=True)
    assert attr.shape == x.shape
    for i in range(4):  # |grad| = |w| for every noisy copy, whatever the noise
        assert _corr(attr[i], w.abs().view(3, 16, 16)) > 0.99
        assert torch.allclose(attr[i], w.abs().view(3, 16, 16), atol=1e-5)
    signed = smoothgrad(critic, x, nt_samples=4, stdevs=0.3, absolute=False)
    assert torch.allclose(signed, w.view(1, 3, 16, 16).expand_as(x), atol=1e-5)


def test_smoothgrad_of_a_nonlinear_critic_depends_on_the_noise_level():
    # D(x) = sum relu(x): the gradient is the indicator x > 0; SmoothGrad turns it into P(x + e > 0).
    x = torch.linspace(-1, 1, 64).view(1, 1, 8, 8)
    sharp = smoothgrad(lambda v: torch.relu(v).flatten(1).sum(1), x, nt_samples=64, stdevs=1e-4, absolute=False)
    assert torch.equal(sharp, (x > 0).float())
    smooth = smoothgrad(lambda v: torch.relu(v).flatten(1).sum(1), x, nt_samples=512, stdevs=0.5, absolute=False)
    expected = torch.distributions.Normal(0.0, 0.5).cdf(x)  # P(x + N(0, .5^2) > 0)
    assert (smooth - expected).abs().max() < 0.1


def test_concept_shares_known_answer():
    maps = torch.zeros(1, 4, 4)
    maps[0, :2] = 1.0  # all saliency in the top half
    masks = torch.zeros(1, 2, 4, 4, dtype=torch.bool)
    masks[0, 0, :2] = True  # concept 0 = top half
    masks[0, 1, 2:] = True  # concept 1 = bottom half
    mass, area = concept_shares(maps, masks)
    assert mass.tolist() == [1.0, 0.0] and area.tolist() == [0.5, 0.5]
    assert saliency_maps(torch.tensor([[[[1.0]], [[-2.0]]]])).item() == 3.0


def test_saliency_probe_writes_grids_and_summary(tmp_path):
    torch.manual_seed(0)
    model = DCGAN(latent_dim=8, ngf=8, ndf=8, resolution=32).eval()
    ctx = ProbeContext.create("saliency", model, None, tmp_path)
    summary = saliency_probe(ctx, n=3, nt_samples=2, nt_samples_batch_size=2)
    out = tmp_path / "saliency"
    assert (out / "fake.png").is_file() and not (out / "real.png").exists()  # no datamodule: fakes only
    assert json.loads((out / "summary.json").read_text())["fake"]["mean_abs_attr"] > 0
    assert len(summary["fake"]["critic_scores"]) == 3
    assert all(p.grad is None for p in model.parameters())  # only input gradients were taken
    assert all(p.requires_grad for p in model.parameters())
