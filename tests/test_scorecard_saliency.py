"""Scorecard saliency check: cascade stages, re-initialisation, the planted critics' known answers."""

from __future__ import annotations

import pytest
import torch

from gan_interp.data import GANDataModule
from gan_interp.data.sources import SyntheticPosterSource
from gan_interp.data.synthetic_posters import CONCEPTS, render_posters
from gan_interp.models import DCGAN
from gan_interp.scorecard.known_answers import LinearCritic, smooth_pattern
from gan_interp.scorecard.models import random_init_like
from gan_interp.scorecard.saliency import (
    TINY,
    cascade,
    check_saliency,
    critic_stages,
    fresh_inits,
    planted_concept_share,
    reinitialised,
)


@pytest.fixture(scope="module")
def dm(tmp_path_factory) -> GANDataModule:
    data = GANDataModule(SyntheticPosterSource(n=96), resolution=32, cache_dir=str(tmp_path_factory.mktemp("c")))
    data.setup()
    return data


def _dcgan(seed: int = 0) -> DCGAN:
    torch.manual_seed(seed)
    return DCGAN(latent_dim=16, ngf=8, ndf=8, resolution=32).eval()


def test_critic_stages_run_from_the_score_head_down():
    model = _dcgan()
    stages = critic_stages(model, torch.zeros(2, 3, 32, 32))
    assert [name for name, _ in stages] == ["head", "block2", "block1", "block0"]
    assert stages[0][1] == ["discriminator.to_score.weight"]
    assert any(k.endswith("running_mean") for k in stages[1][1])  # a layer's buffers are re-initialised too
    keys = [k for _, ks in stages for k in ks]
    assert len(keys) == len(set(keys)) and not any(k.startswith("generator.") for k in keys)


def test_reinitialised_takes_exactly_the_stage_keys_from_the_source():
    model, source = _dcgan(0), _dcgan(1)
    keys = critic_stages(model, torch.zeros(1, 3, 32, 32))[1][1]
    copy = reinitialised(model, source, keys)
    for k, v in copy.state_dict().items():
        assert torch.equal(v, (source if k in keys else model).state_dict()[k]), k
    assert not torch.equal(model.state_dict()[keys[0]], source.state_dict()[keys[0]])  # the model itself untouched


def test_fresh_inits_differ_from_rand():
    model = _dcgan()
    rand = random_init_like(model, seed=0)
    inits = fresh_inits(model, rand, seed=0)
    w = [m.discriminator.to_score.weight for m in (rand, *inits)]
    assert len(inits) == 2 and not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])


def test_planted_linear_critic_cascade_known_answers():
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    w = smooth_pattern(3, 32)
    same = cascade(LinearCritic(w), LinearCritic(w.clone()), x, TINY, seed=0)  # "re-initialised" to itself: 1
    assert same["stages"] == ["linear"] and min(same[k][0] for k in ("spearman_abs", "spearman_signed", "ssim")) > 0.99
    fresh = LinearCritic(torch.randn(w.shape, generator=torch.Generator().manual_seed(1)))
    other = cascade(LinearCritic(w), fresh, x, TINY, seed=0)  # unrelated weights: ~0
    assert max(abs(other[k][0]) for k in ("spearman_abs", "spearman_signed", "ssim")) < 0.2
    assert torch.allclose(same["maps"][0][0], w.abs().sum(0), atol=1e-5)  # SmoothGrad |map| = channel sum of |w|


def test_planted_mask_critic_puts_all_mass_in_its_concept():
    batch = render_posters(8, resolution=32, seed=2)
    x = torch.from_numpy(batch.images).float() / 127.5 - 1
    masks = torch.from_numpy(batch.masks)
    for concept in ("orb", "figure"):
        share = planted_concept_share(x, masks, CONCEPTS.index(concept), TINY, seed=0)
        assert share == pytest.approx(1.0, abs=1e-6), concept


def test_check_saliency_tiny(dm):
    ref = _dcgan(0)
    rows = check_saliency(ref, random_init_like(ref, seed=3), dm, seed=0, tiny=True)
    assert [r.probe for r in rows] == ["saliency"] * 4
    for row in rows[:3]:
        assert row.details["stages"] == ["head", "block2", "block1", "block0"]
        assert len(row.details["reference"]) == 4 and abs(row.planted) < 0.2
        assert isinstance(row.passed, bool) and row.criterion
    share = rows[3]
    assert share.planted == pytest.approx(1.0, abs=1e-6) and share.passed is True
    per = share.details["reference"]["per_concept"]
    assert set(per) == set(CONCEPTS) and sum(v["share"] for v in per.values()) == pytest.approx(1.0, abs=1e-4)
    assert 0 <= share.reference <= 1
