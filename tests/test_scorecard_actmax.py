"""Scorecard actmax check: the planted linear units' known optima and the tiny check's rows."""

from __future__ import annotations

import math

import pytest
import torch

from gan_interp.data import GANDataModule
from gan_interp.data.sources import SyntheticPosterSource
from gan_interp.models import DCGAN
from gan_interp.scorecard.actmax import TINY, check_actmax, planted_reading, unit_activations
from gan_interp.scorecard.known_answers import LinearUnitModel, smooth_pattern
from gan_interp.scorecard.models import random_init_like


@pytest.fixture(scope="module")
def dm(tmp_path_factory) -> GANDataModule:
    data = GANDataModule(SyntheticPosterSource(n=96), resolution=32, cache_dir=str(tmp_path_factory.mktemp("c")))
    data.setup()
    return data


def _planted() -> LinearUnitModel:
    w = smooth_pattern(3, 16)
    return LinearUnitModel(torch.stack([w, -w.transpose(-1, -2)]), latent_dim=8, seed=0)


def test_linear_unit_answers_are_the_optima():
    model = _planted()
    g = torch.Generator().manual_seed(0)
    box = torch.rand(500, 3, 16, 16, generator=g) * 2 - 1
    acts = unit_activations(model.critic, model.units, box)  # [n, 2]
    for u in (0, 1):
        best = unit_activations(model.critic, model.units, model.pixel_answer(u).unsqueeze(0))[0, u]
        w = model.units.weight[u].detach()
        assert best == pytest.approx(float(w.abs().sum()), rel=1e-5)  # |w|_1
        assert float(acts[:, u].max()) < best
        z = torch.randn(2000, 8, generator=g)
        z = z / z.norm(dim=1, keepdim=True) * math.sqrt(8)
        lin = (z @ model.a.T) @ w  # <w, A z>: tanh ~ linear at this gain
        assert float(lin.max()) < float(w @ (model.a @ (math.sqrt(8) * model.latent_answer(u))))


def test_planted_pixel_optimum_is_found():
    real = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    reading = planted_reading(real, TINY, seed=0)
    assert min(reading["pixel_cos"]) >= 0.9 and reading["pixel_ratio"] > 1
    assert reading["prior_in_range"]
    assert all(-1 <= c <= 1 for c in reading["latent_cos"] + reading["latent_sign_cos"])


def test_check_actmax_tiny(dm):
    torch.manual_seed(0)
    ref = DCGAN(latent_dim=16, ngf=8, ndf=8, resolution=32).eval()
    rows = check_actmax(ref, random_init_like(ref, seed=2), dm, seed=0, tiny=True)
    assert [r.probe for r in rows] == ["actmax"] * 3
    pixel, in_range, optimum = rows
    assert pixel.details["reference"]["layer"] == "block2" and len(pixel.details["reference"]["units"]) == TINY.n_units
    assert isinstance(pixel.reference, float) and isinstance(pixel.passed, bool)
    assert in_range.passed is True and in_range.reference.startswith("in range")  # tanh generator
    assert 0 < optimum.planted <= 1 and isinstance(optimum.passed, bool)
    assert optimum.passed == (optimum.planted >= TINY.planted_latent_cos)
