"""Activation maximisation raises the target unit; parameters and their gradients stay untouched."""

from __future__ import annotations

import torch
from torch import nn

from gan_interp.models import DCGAN
from gan_interp.probes.actmax import (
    actmax_probe,
    layer_scale,
    pixel_actmax,
    prior_actmax,
    total_variation,
    unit_objective,
)
from gan_interp.probes.context import ProbeContext
from gan_interp.probes.gradients import frozen_parameters


def _model() -> DCGAN:
    torch.manual_seed(0)
    return DCGAN(latent_dim=8, ngf=8, ndf=8, resolution=32).eval()


def test_pixel_actmax_increases_the_target_activation():
    model = _model()
    layer = model.discriminator_layers()["block1"]
    objective = unit_objective(model.critic, layer, [0, 5])
    x0 = 0.1 * torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    scale = layer_scale(model.critic, layer, x0)
    assert 0 < scale < 0.1  # an untrained discriminator: tiny activations
    with frozen_parameters(model):
        x, start, end, hist = pixel_actmax(
            objective, x0, steps=15, lr=0.05, jitter=1, generator=torch.Generator().manual_seed(1), act_scale=scale
        )
    assert (end - start).min() > scale  # each unit rose by more than one std of the layer
    assert x.shape == x0.shape and x.abs().max() <= 1.0 and len(hist) == 15
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_prior_actmax_increases_the_target_activation_and_stays_on_the_shell():
    model = _model()
    objective = unit_objective(model.critic, model.discriminator_layers()["block2"], [1, 2, 3])
    z0 = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    with frozen_parameters(model):
        z, images, start, end, _ = prior_actmax(objective, model.generate, z0, steps=15, lr=0.1)
    assert (end > start).all()
    assert torch.allclose(z.norm(dim=1), torch.full((3,), 8**0.5), atol=1e-4)
    assert images.shape == (3, 3, 32, 32)


def test_unit_objective_picks_one_channel_per_row():
    layer = nn.Identity()
    objective = unit_objective(lambda x: layer(x), layer, [1, 0])
    x = torch.zeros(2, 2, 3, 3)
    x[0, 1] = 2.0  # row 0 -> channel 1
    x[1, 0] = 5.0  # row 1 -> channel 0
    assert objective(x).tolist() == [2.0, 5.0]
    flat = torch.zeros(1, 1, 2, 2)
    flat[0, 0, 0, 0] = 1.0  # one of 2 vertical and one of 2 horizontal neighbour pairs differ by 1: 0.5 + 0.5
    assert total_variation(flat).item() == 1.0


def test_actmax_probe_reports_reached_activation(tmp_path):
    model = _model()
    with torch.no_grad():
        s = actmax_probe(ProbeContext.create("actmax", model, None, tmp_path), channels=2, steps=8)
    assert s["layer"] == "block2" and s["channels"] == [0, 1]
    for kind in ("pixel", "prior"):
        assert all(b > a for a, b in zip(s[kind]["start"], s[kind]["reached"]))
    assert (tmp_path / "actmax" / "units.png").is_file() and (tmp_path / "actmax" / "reached.json").is_file()
