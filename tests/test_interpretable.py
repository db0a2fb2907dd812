"""Interpretable-GAN regulariser: GMM filter groups, energy terms, gradients, training option."""

from __future__ import annotations

import math

import pytest
import torch

from gan_interp.errors import ConfigError
from gan_interp.models.interpretable import (
    InterpretableRegularizer,
    align_labels,
    fit_isotropic_gmm,
    group_filters,
    normalise_maps,
)
from gan_interp.train import build

TINY = ["data=fake", "model.ngf=8", "model.ndf=8", "model.latent_dim=16", "logger=none"]


def _planted_maps(n: int = 16, per_group: int = 4, side: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps ``[n, 3*per_group, side, side]``: group 0 a blob, 1 a row band, 2 a column band (per-sample position)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.arange(side).float()
    yy, xx = torch.meshgrid(idx, idx, indexing="ij")
    pos = torch.randint(1, side - 1, (n, 3), generator=g).float()
    blob = torch.exp(-((xx - pos[:, 0, None, None]) ** 2 + (yy - pos[:, 1, None, None]) ** 2) / 3)
    row = torch.exp(-((yy - pos[:, 2, None, None]) ** 2) / 1.5).expand(n, side, side)
    col = torch.exp(-((xx - pos[:, 1, None, None] - 1) ** 2) / 1.5).expand(n, side, side)
    maps, labels = [], []
    for k, template in enumerate((blob, row, col)):
        for _ in range(per_group):
            scale = 0.5 + torch.rand(n, 1, 1, generator=g)
            maps.append(template * scale + 0.05 * torch.rand(n, side, side, generator=g))
            labels.append(k)
    perm = torch.randperm(len(maps), generator=g)
    return torch.stack(maps, 1)[:, perm], torch.tensor(labels)[perm]


def _same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(((a[:, None] == a[None, :]) == (b[:, None] == b[None, :])).all())


def test_gmm_grouping_recovers_planted_filter_groups():
    feats, truth = _planted_maps()
    labels = group_filters(feats, 3, seed=0)
    assert _same_partition(labels, truth)
    assert len(set(labels.tolist())) == 3


def test_isotropic_gmm_recovers_two_gaussians_and_their_parameters():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(60, 5, generator=g) * 0.5 + 4.0
    b = torch.randn(40, 5, generator=g) * 1.0 - 4.0
    fit = fit_isotropic_gmm(torch.cat([a, b]), 2, seed=1)
    lab = fit["labels"]
    assert _same_partition(lab, torch.tensor([0] * 60 + [1] * 40))
    ka = int(lab[0])
    assert float(fit["weights"][ka]) == pytest.approx(0.6, abs=1e-6)
    assert float(fit["variances"][ka]) == pytest.approx(0.25, rel=0.3)
    assert float(fit["variances"][1 - ka]) == pytest.approx(1.0, rel=0.3)
    with pytest.raises(ConfigError):
        fit_isotropic_gmm(torch.randn(3, 2), 4)


def test_align_labels_undoes_a_permutation():
    old = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    new = torch.tensor([2, 2, 0, 0, 1, 1, 0])  # permuted, one filter moved
    assert align_labels(new, old, 3).tolist() == [0, 0, 1, 1, 2, 2, 1]
    assert align_labels(new, torch.full((7,), -1), 3).tolist() == new.tolist()


def test_interpret_loss_has_its_known_minimum_and_the_regulariser_gives_finite_gradients():
    feats, _ = _planted_maps(per_group=3)
    m, c, k = feats.shape[1], 3, feats.shape[2] * feats.shape[3]
    reg = InterpretableRegularizer(m, k, n_concepts=c, lambda_other=0.5, regroup_every=1000)
    f = feats.clone().requires_grad_(True)
    loss, parts = reg(f, step=0)  # first call fits the groups
    assert (reg.groups >= 0).all() and len(set(reg.groups.tolist())) == 3
    assert float(parts["interpret"]) == 0.0  # W = 0 at init
    loss.backward()
    assert torch.isfinite(f.grad).all() and torch.isfinite(reg.V.grad).all()
    assert reg.V.grad.abs().sum() > 0
    # W at its target sign pattern: L_interpret = -1 - lambda_other * (C - 1)
    with torch.no_grad():
        reg.V.copy_(50 * (2 * reg.assignment()[:, :, None] - 1).expand_as(reg.V))
    assert float(reg.interpret_loss().detach()) == pytest.approx(-1 - 0.5 * (c - 1), abs=1e-6)


def test_realism_term_pulls_filters_toward_their_group_centre():
    feats, _ = _planted_maps(per_group=3, seed=1)
    reg = InterpretableRegularizer(feats.shape[1], 64, n_concepts=3, lambda_interpret=0.0, regroup_every=10_000)
    reg.regroup(feats)
    with torch.no_grad():  # W at its target: +1 toward the own group, -1 toward the others
        reg.V.copy_(50 * (2 * reg.assignment()[:, :, None] - 1).expand_as(reg.V))
    noisy = (feats + 0.6 * torch.rand(feats.shape, generator=torch.Generator().manual_seed(2))).requires_grad_(True)
    opt = torch.optim.SGD([noisy], lr=20.0)
    energy, gap = [], []
    for _ in range(30):
        loss, parts = reg(noisy, step=1)
        energy.append(float(reg.energy(noisy.detach()).mean()))
        gap.append(float(parts["own_group_cos"] - parts["other_group_cos"]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert energy[-1] > energy[0] + 0.5  # descending L_real raises g_W of the generated maps
    assert gap[-1] > gap[0] + 0.3  # filters end closer to their own centre than to the others
    # with the batch as its own partition-function sample, L_real = log-mean-exp(g) - mean(g) >= 0
    assert float(reg.real_loss(noisy.detach())) >= -1e-6


def test_normalised_maps_have_unit_norm_and_bad_settings_fail_in_one_line():
    f = normalise_maps(torch.rand(2, 3, 4, 4) + 0.1)
    torch.testing.assert_close(f.norm(dim=2), torch.ones(2, 3))
    with pytest.raises(ConfigError, match="n_concepts"):
        InterpretableRegularizer(4, 16, n_concepts=9)


def test_interpretable_option_trains_a_dcgan(make_cfg):
    cfg = make_cfg(
        [
            *TINY,
            "model.interpretable.enabled=true",
            "model.interpretable.n_concepts=3",
            "model.interpretable.regroup_every=2",
            "++trainer.max_steps=8",
            "trainer.max_epochs=2",
            "trainer.limit_val_batches=0",
        ]
    )
    datamodule, model, trainer = build(cfg)
    reg = model.interpretable
    assert reg is not None and reg.layer == "block1"  # 32 px DCGAN: the 8x8 middle block
    assert reg.V.shape == (16, 3, 64)  # ngf 8 -> block1 has 16 filters at 8x8
    opt_g, _ = model.configure_optimizers()
    assert any(p is reg.V for group in opt_g.param_groups for p in group["params"])
    trainer.fit(model, datamodule=datamodule)
    assert model.g_steps == 4
    assert (reg.groups >= 0).all() and int(reg.last_regroup) >= 2  # regrouped during training
    assert reg.V.abs().max() > 0  # W was trained
    metrics = trainer.callback_metrics
    assert math.isfinite(float(metrics["train/interp_real"])) and float(metrics["train/interp_interpret"]) < 0
    assert all(torch.isfinite(p).all() for p in model.generator.parameters())


def test_interpretable_option_fast_dev_run_and_disabled_default(make_cfg):
    from gan_interp.train import train

    assert train(make_cfg([*TINY, "model.interpretable.enabled=true", "++trainer.fast_dev_run=true"]))["g_steps"] == 1.0
    _, model, _ = build(make_cfg(TINY))
    assert (
        model.interpretable is None and model.interpretable_param_groups() == [] and model.interpretable_loss() == 0.0
    )
