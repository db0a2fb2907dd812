"""Memorisation check of the probe scorecard: the flag rule, the verdict, and the check on planted controls."""

from __future__ import annotations

import hydra

from gan_interp.data import GANDataModule
from gan_interp.data.sources import SyntheticPosterSource
from gan_interp.scorecard.memorisation import _verdict, check_memorisation, metric_flagged
from gan_interp.scorecard.models import random_init_like


def test_flag_rule_known_answers():
    assert metric_flagged({"nn_ratio": 0.1, "nn_copy_fraction": 1.0})
    assert metric_flagged({"nn_ratio": 0.9, "nn_copy_fraction": 0.5})  # copies one image in two
    assert metric_flagged({"nn_ratio": 0.5, "nn_copy_fraction": 0.0})  # twice as close as held-out reals
    assert not metric_flagged({"nn_ratio": 1.0, "nn_copy_fraction": 0.05})
    assert not metric_flagged({"nn_ratio": 3.0, "nn_copy_fraction": 0.0})  # off the data: not a copy


def test_verdict_needs_the_memoriser_flagged_and_the_others_not():
    ok = {"reference": False, "random init": True, "memoriser": True, "held-out sampler": False}
    assert _verdict(ok) == (True, "")  # random init decides nothing
    assert _verdict({**ok, "memoriser": False}) == (False, "memoriser not flagged")
    assert _verdict({**ok, "reference": True, "held-out sampler": True}) == (
        False,
        "reference flagged; held-out sampler flagged",
    )


def test_check_flags_the_memoriser_not_the_heldout_sampler(tmp_path, make_cfg):
    dm = GANDataModule(
        SyntheticPosterSource(n=320, seed=0),
        resolution=32,
        val_fraction=0.1,
        test_fraction=0.25,
        cache_dir=str(tmp_path),
    )
    dm.setup()
    model = hydra.utils.instantiate(make_cfg(["data.resolution=32", "model.latent_dim=16"]).model).eval()
    rows = check_memorisation(model, random_init_like(model, 1), dm, seed=0, tiny=True)
    assert [r.probe for r in rows] == ["memorisation", "memorisation", "neighbours"]
    for row in rows:
        assert row.passed, (row.reading, row.planted, row.note)
        assert row.planted.startswith("memoriser ") and "(flagged)" in row.planted.split(";")[0]
        assert "(flagged)" not in row.planted.split(";")[1]
    pixels = rows[0].details["values"]
    assert pixels["memoriser"]["nn_ratio"] < 0.3 and 0.7 < pixels["held-out sampler"]["nn_ratio"] < 1.4
