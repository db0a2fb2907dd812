"""GANModule: the optimizer-update helper and the one resolution check."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from gan_interp.errors import ConfigError
from gan_interp.models import DCGAN
from gan_interp.models.base import GANModule


class ToyGAN(GANModule):
    """Two scalar "nets" w_g, w_d with SGD(lr 0.1); one training step runs one update of each."""

    supported_resolutions = (8,)

    def __init__(self, use_helper: bool) -> None:
        super().__init__(latent_dim=2, resolution=8, channels=1, name="toy")
        self.use_helper = use_helper
        self.w_g, self.w_d = nn.Parameter(torch.tensor(2.0)), nn.Parameter(torch.tensor(-1.0))
        self.results: dict[str, object] = {}

    def generate(self, z: Tensor) -> Tensor:
        return self.w_g * z

    def critic(self, x: Tensor) -> Tensor:
        return self.w_d * x.flatten(1).sum(1)

    def configure_optimizers(self):
        return torch.optim.SGD([self.w_g], lr=0.1), torch.optim.SGD([self.w_d], lr=0.1)

    def d_loss(self) -> tuple[Tensor, Tensor]:
        # grad flags inside the update: only w_d's optimizer is toggled on
        self.results["d_grad_flags"] = (self.w_g.requires_grad, self.w_d.requires_grad)
        noise = torch.randn(())  # a random draw inside the update (same order either way)
        return (self.w_d - 3.0) ** 2 + 0 * self.w_g * noise, noise

    def g_loss(self) -> Tensor:
        self.results["g_grad_flags"] = (self.w_g.requires_grad, self.w_d.requires_grad)
        return self.w_g**2 * self.w_d.detach().abs()

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        if self.use_helper:
            d_loss, noise = self.optimizer_update(opt_d, self.d_loss)
            g_loss = self.optimizer_update(opt_g, self.g_loss)
        else:  # the hand-written block the helper replaces
            self.toggle_optimizer(opt_d)
            d_loss, noise = self.d_loss()
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            opt_d.step()
            self.untoggle_optimizer(opt_d)
            self.toggle_optimizer(opt_g)
            g_loss = self.g_loss()
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            opt_g.step()
            self.untoggle_optimizer(opt_g)
        after = (self.w_g.requires_grad, self.w_d.requires_grad)
        self.results.update(d_loss=d_loss, g_loss=g_loss, noise=noise, after=after)


def _one_step(use_helper: bool, tmp_path) -> ToyGAN:
    torch.manual_seed(0)
    model = ToyGAN(use_helper)
    trainer = L.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, train_dataloaders=DataLoader([torch.zeros(1)], batch_size=None))
    return model


def test_optimizer_update_equals_the_hand_written_sequence(tmp_path):
    helper, by_hand = _one_step(True, tmp_path / "a"), _one_step(False, tmp_path / "b")
    # known answer: d = (w_d - 3)^2 at w_d = -1 -> grad -8 -> w_d = -1 + 0.8; g = w_g^2 |w_d| at w_d = -0.2 -> grad 0.8
    assert helper.w_d.item() == pytest.approx(-0.2) and helper.w_g.item() == pytest.approx(2.0 - 0.1 * 0.8)
    assert float(helper.results["d_loss"]) == pytest.approx(16.0)
    assert float(helper.results["g_loss"]) == pytest.approx(0.8)
    for model in (helper, by_hand):
        assert model.results["d_grad_flags"] == (False, True) and model.results["g_grad_flags"] == (True, False)
        assert model.results["after"] == (True, True)  # untoggled
    assert torch.equal(helper.w_d, by_hand.w_d) and torch.equal(helper.w_g, by_hand.w_g)
    assert torch.equal(helper.results["noise"], by_hand.results["noise"])  # same random draws
    for key in ("d_loss", "g_loss"):
        assert torch.equal(helper.results[key], by_hand.results[key]) and not helper.results[key].requires_grad


def test_resolution_is_checked_once_against_the_class_attribute():
    with pytest.raises(ConfigError) as err:
        DCGAN(latent_dim=8, ngf=4, ndf=4, resolution=48)
    assert str(err.value) == "data.resolution=48 cannot be made by model dcgan; use one of 32, 64, 128"
    with pytest.raises(ConfigError, match="data.resolution=16 cannot be made by model toy; use one of 8$"):
        ToyGAN.check_resolution(16, "toy")
    ToyGAN.check_resolution(8, "toy")  # supported: no error
