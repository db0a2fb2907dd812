"""DCGAN (Radford, Metz & Chintala 2016) for 32/64/128 px images.

Generator: z -> 4x4 (transposed conv) -> doubling blocks (transposed conv 4/2/1, BN, ReLU) -> tanh.
Discriminator: halving blocks (conv 4/2/1, BN except first, LeakyReLU 0.2) -> 4x4 conv -> logit.
Widths scale with resolution: 64 px uses ngf*8 at 4x4 exactly as in the paper.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gan_interp.models import losses
from gan_interp.models.base import GANModule, init_dcgan_weights


def _n_blocks(resolution: int) -> int:
    """Doublings from 4x4 to ``resolution`` (one of :attr:`DCGAN.supported_resolutions`, checked by the model)."""
    return int(math.log2(resolution)) - 2


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
    ) -> None:
        super().__init__()
        n = _n_blocks(resolution)
        widths = [ndf * 2**i for i in range(n)]  # e.g. 64 px: 64, 128, 256, 512
        blocks: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True))
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, True)
                )
            )
        self.blocks = nn.Sequential(*blocks)
        self.to_score = nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.to_score(self.blocks(x)).flatten()


class DCGAN(GANModule):
    """DCGAN with the non-saturating logistic loss, one D step and one G step per batch."""

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
    ) -> None:
        super().__init__(latent_dim, resolution, channels, n_fixed, fixed_seed, name=name)
        self.save_hyperparameters(logger=False)  # the run logs its whole resolved config once (training.py)
        self.hparams.betas = tuple(float(b) for b in betas)  # plain floats: optimizer state loads with weights_only
        self.generator = DCGANGenerator(latent_dim, ngf, channels, resolution)
        self.discriminator = DCGANDiscriminator(ndf, channels, resolution)
        self.generator.apply(init_dcgan_weights)
        self.discriminator.apply(init_dcgan_weights)
        self.init_interpretable(interpretable)

    # contract
    def generate(self, z: Tensor) -> Tensor:
        return self.generator(z)

    def critic(self, x: Tensor) -> Tensor:
        return self.discriminator(x)

    def generator_layers(self) -> dict[str, nn.Module]:
        return {f"block{i}": b for i, b in enumerate(self.generator.blocks)} | {"to_image": self.generator.to_image}

    def discriminator_layers(self) -> dict[str, nn.Module]:
        return {f"block{i}": b for i, b in enumerate(self.discriminator.blocks)}

    def configure_optimizers(self):
        lr, betas = self.hparams.lr, self.hparams.betas
        g_groups = [{"params": self.generator.parameters()}, *self.interpretable_param_groups()]
        opt_g = torch.optim.Adam(g_groups, lr=lr, betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas)
        return opt_g, opt_d

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        real = batch["image"]
        fake = self.generate(self.sample_z(real.shape[0]))

        def d_loss() -> tuple[Tensor, Tensor, Tensor]:  # real -> 1, fake -> 0
            real_scores, fake_scores = self.critic(real), self.critic(fake.detach())
            return losses.d_logistic_loss(real_scores, fake_scores), real_scores, fake_scores

        def g_loss() -> Tensor:  # fool the updated discriminator
            return losses.g_nonsaturating_loss(self.critic(fake)) + self.interpretable_loss()

        d_loss_value, real_scores, fake_scores = self.optimizer_update(opt_d, d_loss)
        g_loss_value = self.optimizer_update(opt_g, g_loss)
        self.finish_generator_step()

        self.log_adversarial_step(d_loss_value, g_loss_value, real_scores, fake_scores)
