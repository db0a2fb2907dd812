"""DCGAN stabilisers (augment.py, hinge loss, EMA in base.py, spectral norm): known answers."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from gan_interp.errors import ConfigError
from gan_interp.models import DCGAN, losses
from gan_interp.models.augment import cutout, diff_augment, parse_policy, translation
from gan_interp.models.dcgan import ema_warmup


def test_policy_accepts_a_list_or_a_comma_string_and_names_a_bad_op():
    assert parse_policy(["color", "translation"]) == parse_policy("color, translation") == ("color", "translation")
    assert parse_policy([]) == parse_policy("") == parse_policy(None) == ()
    with pytest.raises(ConfigError, match="'rotate'"):
        parse_policy("translation,rotate")


def test_empty_policy_is_the_identity():
    x = torch.randn(3, 3, 8, 8)
    assert torch.equal(diff_augment(x, ()), x)


def test_translation_shifts_content_and_fills_zeros():
    torch.manual_seed(0)
    x = torch.arange(1, 1 + 4 * 8 * 8, dtype=torch.float).view(4, 1, 8, 8)
    y = translation(x)  # shift up to 1 px at 8 px (1/8 of the side)
    for i in range(4):
        # find the shift that maps x to y on the overlap: exactly one of the 9 candidates matches
        matches = [
            (dy, dx)
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if torch.equal(
                y[i, 0, max(dy, 0) : 8 + min(dy, 0), max(dx, 0) : 8 + min(dx, 0)],
                x[i, 0, max(-dy, 0) : 8 + min(-dy, 0), max(-dx, 0) : 8 + min(-dx, 0)],
            )
        ]
        assert len(matches) == 1
        dy, dx = matches[0]
        zeros = int((y[i] == 0).sum())
        assert zeros == 8 * 8 - (8 - abs(dy)) * (8 - abs(dx))  # vacated rows/columns only


def test_cutout_zeroes_one_square_of_half_the_side_at_most():
    torch.manual_seed(1)
    x = torch.ones(64, 1, 16, 16)
    y = cutout(x)
    zeros = (y == 0).flatten(1).sum(1)
    assert int(zeros.max()) == 8 * 8 and int(zeros.min()) > 0  # clipped at the border, never empty
    assert set(y.unique().tolist()) <= {0.0, 1.0}


def test_augmentation_is_differentiable():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    diff_augment(x, ("color", "translation", "cutout")).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_hinge_losses_known_values():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # relu(1 - real) = [0, 0.5] -> 0.25; relu(1 + fake) = [0, 1] -> 0.5
    assert float(losses.d_hinge_loss(real, fake)) == pytest.approx(0.75)
    assert float(losses.g_hinge_loss(fake)) == pytest.approx(1.0)


def test_spectral_norm_critic_has_no_batchnorm_and_unit_spectral_norm():
    torch.manual_seed(0)
    model = DCGAN(resolution=32, ngf=8, ndf=8, spectral_norm=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.discriminator.modules())
    model.critic(torch.randn(4, 3, 32, 32))  # training-mode forwards run the power iteration
    for _ in range(30):
        model.critic(torch.randn(4, 3, 32, 32))
    conv = model.discriminator.blocks[1][0]
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
    assert float(sigma) == pytest.approx(1.0, abs=0.05)


def test_unknown_loss_and_bad_ema_decay_are_one_line_errors():
    with pytest.raises(ConfigError, match="model.loss='wasserstein'"):
        DCGAN(resolution=32, ngf=8, ndf=8, loss="wasserstein")
    with pytest.raises(ConfigError, match="model.ema_decay=1.0"):
        DCGAN(resolution=32, ngf=8, ndf=8, ema_decay=1.0)


def test_ema_is_read_in_eval_mode_and_moves_by_the_decay():
    torch.manual_seed(0)
    model = DCGAN(resolution=32, ngf=8, ndf=8, ema_decay=0.75)
    assert model.g_ema is not None and not any(p.requires_grad for p in model.g_ema.parameters())
    model.train()
    assert model.g_eval is model.generator
    model.eval()
    assert model.g_eval is model.g_ema and model.generator_layers()["block0"] is model.g_ema.blocks[0]
    w = model.generator.blocks[0][0].weight
    old = model.g_ema.blocks[0][0].weight.clone()
    with torch.no_grad():
        w.add_(1.0)
    model.update_ema(0.75)
    assert torch.allclose(model.g_ema.blocks[0][0].weight, 0.75 * old + 0.25 * w.detach())
    z = torch.randn(2, 100)
    assert torch.equal(model.generate(z), model.g_ema(z))  # eval mode generates with the EMA copy


def test_dcgan_trains_a_step_with_every_stabiliser(tmp_path):
    torch.manual_seed(0)
    model = DCGAN(
        resolution=32,
        ngf=8,
        ndf=8,
        loss="hinge",
        lr_d=4e-4,
        spectral_norm=True,
        augment=["color", "translation", "cutout"],
        ema_decay=0.9,
    )
    ema_before = [p.clone() for p in model.g_ema.parameters()]
    batch = {"image": torch.rand(8, 3, 32, 32) * 2 - 1}
    trainer = L.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, train_dataloaders=DataLoader([batch], batch_size=None))
    assert model.g_steps == 1
    opt_g, opt_d = (o.optimizer for o in model.optimizers())
    assert opt_d.param_groups[0]["lr"] == pytest.approx(4e-4) and opt_g.param_groups[0]["lr"] == pytest.approx(2e-4)
    assert any(not torch.equal(a, b) for a, b in zip(ema_before, model.g_ema.parameters()))  # the EMA moved


def test_ema_warmup_follows_tensorflows_num_updates_rule():
    assert ema_warmup(0.999, 0) == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    assert ema_warmup(0.999, 90) == pytest.approx(0.91)
    assert ema_warmup(0.999, 10**6) == pytest.approx(0.999)
