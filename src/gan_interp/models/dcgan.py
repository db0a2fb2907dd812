"""DCGAN (Radford, Metz & Chintala 2016) for 32/64/128 px images.

Generator: z -> 4x4 (transposed conv) -> doubling blocks (transposed conv 4/2/1, BN, ReLU) -> tanh.
Discriminator: halving blocks (conv 4/2/1, BN except first, LeakyReLU 0.2) -> 4x4 conv -> logit.
Widths scale with resolution: 64 px uses ngf*8 at 4x4 exactly as in the paper.

The defaults are the paper's settings (the baseline the seeds describe). Field-standard stabilisers that keep a
DCGAN a DCGAN are options (conf/model/dcgan.yaml; the `dcgan_fast` preset turns them on): EMA of the generator
weights (``ema_decay``; read in eval mode), DiffAugment of the critic's inputs (``augment``), spectral
normalisation in the critic instead of its BatchNorm (``spectral_norm``), the hinge loss (``loss``) and two
time-scale learning rates (``lr_d``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gan_interp.errors import ConfigError
from gan_interp.models import losses
from gan_interp.models.augment import diff_augment, parse_policy
from gan_interp.models.base import GANModule, init_dcgan_weights

# model.loss -> (critic loss, generator loss), pure functions of the critic's scores (models/losses.py)
LOSSES = {
    "logistic": (losses.d_logistic_loss, losses.g_nonsaturating_loss),
    "hinge": (losses.d_hinge_loss, losses.g_hinge_loss),
}


def _n_blocks(resolution: int) -> int:
    """Doublings from 4x4 to ``resolution`` (one of :attr:`DCGAN.supported_resolutions`, checked by the model)."""
    return int(math.log2(resolution)) - 2


def ema_warmup(decay: float, step: int) -> float:
    """EMA decay at generator step ``step``: ``min(decay, (1 + step) / (10 + step))`` (TensorFlow's
    ExponentialMovingAverage with ``num_updates``), so early samples are not stuck at the initial weights."""
    return min(float(decay), (1.0 + step) / (10.0 + step))


class DCGANGenerator(nn.Module):
    def __init__(
        self,
        latent_dim: int = 100,  # nz
        ngf: int = 64,  # generator width at the last hidden block
        channels: int = 3,  # output channels
        resolution: int = 64,  # output side, one of DCGAN.supported_resolutions
    ) -> None:
        super().__init__()
        n = _n_blocks(resolution)
        widths = [ngf * 2 ** (n - 1 - i) for i in range(n)]  # e.g. 64 px: 512, 256, 128, 64
        blocks: list[nn.Module] = [
            nn.Sequential(
                nn.ConvTranspose2d(latent_dim, widths[0], 4, 1, 0, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(True)
            )
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            blocks.append(
                nn.Sequential(
                    nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)
                )
            )
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Sequential(nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh())
        self.latent_dim = latent_dim

    def forward(self, z: Tensor) -> Tensor:
        return self.to_image(self.blocks(z.view(z.shape[0], self.latent_dim, 1, 1)))


class DCGANDiscriminator(nn.Module):
    def __init__(
        self,
        ndf: int = 64,  # discriminator width of the first block
        channels: int = 3,  # input channels
        resolution: int = 64,  # input side, one of DCGAN.supported_resolutions
        spectral_norm: bool = False,  # spectral normalisation on every conv (then no BatchNorm; Miyato et al. 2018)
    ) -> None:
        super().__init__()
        n = _n_blocks(resolution)
        widths = [ndf * 2**i for i in range(n)]  # e.g. 64 px: 64, 128, 256, 512

        def conv(c_in: int, c_out: int, k: int, s: int, p: int) -> nn.Module:
            layer = nn.Conv2d(c_in, c_out, k, s, p, bias=spectral_norm)
            return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer

        blocks: list[nn.Module] = [nn.Sequential(conv(channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True))]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            norm = nn.Identity() if spectral_norm else nn.BatchNorm2d(c_out)
            blocks.append(nn.Sequential(conv(c_in, c_out, 4, 2, 1), norm, nn.LeakyReLU(0.2, True)))
        self.blocks = nn.Sequential(*blocks)
        self.to_score = conv(widths[-1], 1, 4, 1, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.to_score(self.blocks(x)).flatten()


class DCGAN(GANModule):
    """DCGAN, one D step and one G step per batch; the non-saturating logistic loss by default."""

    supported_resolutions = (32, 64, 128)

    def __init__(
        self,
        latent_dim: int = 100,  # nz
        ngf: int = 64,
        ndf: int = 64,
        resolution: int = 64,
        channels: int = 3,
        lr: float = 2e-4,  # Adam learning rate (both nets)
        betas: tuple[float, float] = (0.5, 0.999),  # Adam betas
        n_fixed: int = 64,
        fixed_seed: int = 1234,
        name: str = "dcgan",
        interpretable: dict | None = None,  # Interpretable-GAN option: {enabled, layer, n_concepts, lambda_*...}
        loss: str = "logistic",  # logistic (non-saturating, the paper) | hinge
        lr_d: float | None = None,  # critic learning rate (two time-scale update); None = lr
        spectral_norm: bool = False,  # spectral norm in the critic (replaces its BatchNorm)
        augment: list[str] | str = (),  # DiffAugment ops for critic inputs, e.g. [translation, cutout]; () = off
        ema_decay: float = 0.0,  # EMA of the generator weights, read in eval mode (e.g. 0.999); 0 = off
    ) -> None:
        super().__init__(latent_dim, resolution, channels, n_fixed, fixed_seed, name=name)
        if loss not in LOSSES:
            raise ConfigError(f"model.loss={loss!r} is unknown; use one of {tuple(LOSSES)}")
        self.save_hyperparameters(logger=False)  # the run logs its whole resolved config once (training.py)
        self.hparams.betas = tuple(float(b) for b in betas)  # plain floats: optimizer state loads with weights_only
        self.augment_ops = parse_policy(augment)
        self.d_loss_fn, self.g_loss_fn = LOSSES[loss]
        self.generator = DCGANGenerator(latent_dim, ngf, channels, resolution)
        self.discriminator = DCGANDiscriminator(ndf, channels, resolution, spectral_norm)
        self.generator.apply(init_dcgan_weights)
        self.discriminator.apply(init_dcgan_weights)
        self.init_interpretable(interpretable)
        if not 0.0 <= float(ema_decay) < 1.0:
            raise ConfigError(f"model.ema_decay={ema_decay} must be in [0, 1); 0 turns the EMA generator off")
        if ema_decay > 0:
            self.init_ema()

    # contract
    def generate(self, z: Tensor) -> Tensor:
        return self.g_eval(z)

    def critic(self, x: Tensor) -> Tensor:
        return self.discriminator(x)

    def generator_layers(self) -> dict[str, nn.Module]:
        g = self.g_eval
        return {f"block{i}": b for i, b in enumerate(g.blocks)} | {"to_image": g.to_image}

    def discriminator_layers(self) -> dict[str, nn.Module]:
        return {f"block{i}": b for i, b in enumerate(self.discriminator.blocks)}

    def configure_optimizers(self):
        lr, betas = self.hparams.lr, self.hparams.betas
        g_groups = [{"params": self.generator.parameters()}, *self.interpretable_param_groups()]
        opt_g = torch.optim.Adam(g_groups, lr=lr, betas=betas)
        lr_d = lr if self.hparams.get("lr_d") is None else self.hparams.lr_d
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr_d, betas=betas)
        return opt_g, opt_d

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        real = batch["image"]
        fake = self.generate(self.sample_z(real.shape[0]))

        aug = self.augment_ops

        def d_loss() -> tuple[Tensor, Tensor, Tensor]:  # real -> 1, fake -> 0
            real_scores = self.critic(diff_augment(real, aug))
            fake_scores = self.critic(diff_augment(fake.detach(), aug))
            return self.d_loss_fn(real_scores, fake_scores), real_scores, fake_scores

        def g_loss() -> Tensor:  # fool the updated discriminator
            return self.g_loss_fn(self.critic(diff_augment(fake, aug))) + self.interpretable_loss()

        d_loss_value, real_scores, fake_scores = self.optimizer_update(opt_d, d_loss)
        g_loss_value = self.optimizer_update(opt_g, g_loss)
        if self.g_ema is not None:
            self.update_ema(ema_warmup(self.hparams.ema_decay, self.g_steps))
        self.finish_generator_step()

        self.log_adversarial_step(d_loss_value, g_loss_value, real_scores, fake_scores)
