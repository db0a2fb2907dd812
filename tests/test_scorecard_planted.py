"""Planted generators of the probe scorecard: known answers (what each returns, for which latent)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_interp.data import GANDataModule
from gan_interp.data.datamodule import uint8_to_model
from gan_interp.data.sources import FakeSource, SyntheticPosterSource
from gan_interp.data.synthetic_posters import CONCEPTS, render_posters
from gan_interp.errors import ConfigError
from gan_interp.metrics.runner import evaluate
from gan_interp.metrics.settings import MetricsSettings
from gan_interp.scorecard.planted import (
    KEY_SPAN,
    heldout_sampler,
    latent_keys,
    memoriser,
    no_orb_sampler,
)


@pytest.fixture
def dm(tmp_path):
    dm = GANDataModule(
        SyntheticPosterSource(n=96, seed=2),
        resolution=32,
        val_fraction=0.25,
        test_fraction=0.25,
        cache_dir=str(tmp_path),
    )
    dm.setup()
    return dm


def test_latent_keys_are_a_function_of_the_row():
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    keys = latent_keys(z)
    assert keys == latent_keys(z.clone()) and len(set(keys)) == 5
    assert latent_keys(torch.cat([z[2:3], z[:1]])) == [keys[2], keys[0]]


def test_heldout_sampler_renders_fresh_posters_of_the_same_stream(dm):
    h = heldout_sampler(dm, latent_dim=4)
    z = h.sample_z(6, generator=torch.Generator().manual_seed(1))
    x = h.generate(z)
    assert x.shape == (6, 3, 32, 32) and x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, h.generate(z))  # the same latent, the same poster
    idx = h.stream_indices(latent_keys(z))
    assert all(96 <= i < 96 + KEY_SPAN for i in idx)  # never a poster of the data module (stream indices < 96)
    expected = render_posters(1, 32, seed=2, start=idx[3]).images
    assert torch.equal(x[3], uint8_to_model(torch.from_numpy(expected))[0])
    assert not any(torch.equal(x[0], r) for r in dm.images("train"))


def test_no_orb_sampler_is_the_heldout_sampler_without_the_orb(dm):
    h, no = heldout_sampler(dm, 4), no_orb_sampler(dm, 4)
    z = h.sample_z(24, generator=torch.Generator().manual_seed(2))
    idx = h.stream_indices(latent_keys(z))
    truth = [render_posters(1, 32, seed=2, start=i) for i in idx]
    has_orb = [bool(b.factors["has_orb"][0]) for b in truth]
    assert any(has_orb) and not all(has_orb)
    same = [torch.equal(a, b) for a, b in zip(h.generate(z), no.generate(z))]
    assert same == [not o for o in has_orb]  # only the posters with an orb change
    orb = CONCEPTS.index("orb")
    masks = [render_posters(1, 32, seed=2, start=i, orb_probability=0.0).masks[0, orb].sum() for i in idx]
    assert sum(masks) == 0 and no.kind == "no-orb sampler"


def test_memoriser_returns_training_images_plus_the_stated_noise(dm):
    exact = memoriser(dm, latent_dim=4, noise_std=0.0)
    z = exact.sample_z(8, generator=torch.Generator().manual_seed(3))
    pos = exact.train_positions(latent_keys(z))
    train = dm.dataset("train").__getitems__(pos)["image"]
    assert torch.equal(exact.generate(z), train)
    noisy = memoriser(dm, latent_dim=4, noise_std=0.05).generate(z)
    inner = train.abs() < 0.8  # away from the clamp at +-1
    assert (noisy - train)[inner].std().item() == pytest.approx(0.05, rel=0.1)
    assert torch.equal(noisy, memoriser(dm, latent_dim=4, noise_std=0.05).generate(z))


def test_planted_generators_run_through_the_metrics(dm):
    settings = MetricsSettings(metrics={"memorisation": {"space": "pixels"}}, n=24, features="pixels", seed=0)
    copies = evaluate(memoriser(dm, 4), dm, settings).values
    fresh = evaluate(heldout_sampler(dm, 4), dm, settings).values
    assert copies["nn_ratio"] < 0.3 and copies["nn_copy_fraction"] > 0.9
    assert 0.6 < fresh["nn_ratio"] < 1.6 and fresh["nn_copy_fraction"] < 0.5


def test_poster_samplers_need_poster_data_and_a_positive_latent_dim(tmp_path, dm):
    fake = GANDataModule(FakeSource(n=16), resolution=32, cache_dir=str(tmp_path / "fake"))
    with pytest.raises(ConfigError, match="need data=synthetic_posters"):
        heldout_sampler(fake)
    with pytest.raises(ConfigError, match="latent_dim=0"):
        heldout_sampler(dm, latent_dim=0)
    with pytest.raises(ConfigError, match="noise_std=-1"):
        memoriser(dm, noise_std=-1)
    with pytest.raises(ValueError, match="latents must be"):
        heldout_sampler(dm, 4).generate(torch.zeros(2, 5))


def test_grayscale_poster_data_gets_grayscale_planted_images(tmp_path):
    gray = GANDataModule(
        SyntheticPosterSource(n=16, seed=0, channels=1), resolution=32, channels=1, cache_dir=str(tmp_path)
    )
    gray.setup()
    x = heldout_sampler(gray, 4).sample(3, seed=0)
    assert x.shape == (3, 1, 32, 32)
    assert np.isfinite(x.numpy()).all()
