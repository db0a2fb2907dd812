"""Planted controls of the saliency, directions and actmax checks: models whose right answer is known.

* :class:`PlantedPosterGenerator` - ``z -> uniforms Phi(z) -> posters`` through the posters' own renderer
  (:func:`~gan_interp.data.synthetic_posters.render_from_uniforms`), genre fixed, no pixel noise, and one
  extra dimension that multiplies the background's pixels by a gain (the other concepts keep their
  colours, so the regressor reads them as on real posters): z dim ``j < 32`` drives exactly the
  factor the renderer reads from uniform ``j`` (dim 1 the background hue, dim 5 the figure's x, ...), dim
  32 the brightness, so :data:`PLANTED_DIMS` says which single latent dimension controls which factor.
* :class:`LinearCritic` - ``D(x) = <w, x>``: SmoothGrad of it is ``|w|`` whatever the noise, so after
  re-initialising ``w`` the maps must decorrelate (Spearman ~ 0).
* :func:`mask_critic` - ``D(x) = sum(x * mask)`` for one image's concept mask: all SmoothGrad mass lies
  in that concept (share 1).
* :class:`LinearUnitModel` - a "discriminator" whose units are linear, ``a_c(x) = <w_c, x>``: the
  maximiser over the data box ``[-1, 1]`` is ``sign(w_c)`` and the maximum ``|w_c|_1``; with a linear
  generator ``G(z) = tanh(A z)`` at small ``A`` the latent maximiser on the sphere ``|z| = sqrt(d)`` is
  (nearly) ``sqrt(d) A^T w_c / |A^T w_c|``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from gan_interp.data.synthetic_posters import CONCEPTS, GENRES, N_UNIFORMS, render_from_uniforms

# factor -> the single z dim of PlantedPosterGenerator that drives it (the renderer's uniform columns; 32 = gain);
# measured on the exact factors of 2000 planted posters: |corr| >= 0.70, the next dim <= 0.31 (tests check it)
PLANTED_DIMS: dict[str, int] = {
    "brightness": 32,  # the gain knob
    "bg_luminance": 32,
    "bg_rg": 1,  # hue offset: the background colour knob
    "saturation": 2,
    "figure_scale": 4,
    "figure_x": 5,
    "has_orb": 6,
    "title_top": 10,
    "title_light": 11,
    "n_letters": 12,
    "has_frame": 13,
    "has_stripes": 14,
}
GAIN_AMPLITUDE = 0.4  # background gain 1 + 0.4 tanh(z_32 / 2), in [0.6, 1.4]


class PlantedPosterGenerator(nn.Module):
    """Posters from ``z [n, 33]``: uniform ``j`` = ``Phi(z_j)`` (genre fixed: z dim 0 is inert); the background's
    (and stripes') pixels times the gain ``1 + 0.4 tanh(z_32 / 2)``, clipped to the data range."""

    def __init__(
        self,
        resolution: int = 32,  # poster side (32, 64 or 128)
        genre: str = "comedy",  # the fixed genre (removes the genres' brightness jumps; comedy: hue ~ R - G)
    ) -> None:
        super().__init__()
        self.resolution, self.channels, self.latent_dim = int(resolution), 3, N_UNIFORMS + 1
        self.genre_uniform = (GENRES.index(genre) + 0.5) / len(GENRES)
        self.n_members = 0
        self.device = torch.device("cpu")

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.latent_dim, generator=generator)

    def uniforms(self, z: Tensor) -> np.ndarray:
        """``[n, 32]`` renderer uniforms of ``z`` (column 0 fixed to the genre)."""
        u = 0.5 * (1.0 + torch.erf(z[:, :N_UNIFORMS].detach().double().cpu() / math.sqrt(2.0)))
        u = u.clamp(0.0, 1.0 - 1e-9).numpy()
        u[:, 0] = self.genre_uniform
        return u

    @torch.no_grad()
    def render(self, z: Tensor) -> tuple[Tensor, np.ndarray, dict[str, np.ndarray]]:
        """``(images in [-1, 1] [n, 3, R, R], concept masks [n, K, R, R], factors)`` of ``z``."""
        batch = render_from_uniforms(self.uniforms(z), self.resolution)
        gain = 1.0 + GAIN_AMPLITUDE * torch.tanh(z[:, N_UNIFORMS].detach().float().cpu() / 2.0)
        masks = torch.from_numpy(batch.masks)
        background = masks[:, [CONCEPTS.index("background"), CONCEPTS.index("stripes")]].any(1, keepdim=True)
        scale = torch.where(background, gain.view(-1, 1, 1, 1), torch.ones(()))
        images = (torch.from_numpy(batch.images).float() / 255.0 * scale).clamp(0.0, 1.0)
        return images * 2.0 - 1.0, batch.masks, batch.factors

    def generate(self, z: Tensor) -> Tensor:
        """Images in ``[-1, 1]`` ``[n, 3, R, R]``."""
        return self.render(z)[0]


class LinearCritic(nn.Module):
    """``D(x) = <w, x>`` with one named layer (``discriminator_layers``) so the cascade can re-initialise it."""

    def __init__(self, weight: Tensor) -> None:  # weight [C, H, W]
        super().__init__()
        self.linear = nn.Linear(weight.numel(), 1, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(weight.reshape(1, -1))
        self.n_members = 0

    def critic(self, x: Tensor) -> Tensor:
        return self.linear(x.flatten(1)).flatten()

    def discriminator_layers(self) -> dict[str, nn.Module]:
        return {"linear": self.linear}


def smooth_pattern(channels: int, resolution: int) -> Tensor:
    """A smooth, sign-changing pattern ``[C, R, R]`` (a low-frequency plaid; low total variation)."""
    c = (torch.arange(resolution, dtype=torch.float32) + 0.5) / resolution
    plaid = torch.cos(2 * math.pi * c).view(-1, 1) * torch.sin(2 * math.pi * c).view(1, -1)
    return plaid.expand(channels, -1, -1) * torch.linspace(1.0, 0.5, channels).view(-1, 1, 1)


def mask_critic(mask: Tensor):
    """``x -> [n]``: ``sum(x * mask)`` over pixels and channels, ``mask [H, W]`` bool (one image's concept)."""
    m = mask.float().view(1, 1, *mask.shape)
    return lambda x: (x * m).flatten(1).sum(1)


class LinearUnitModel(nn.Module):
    """Linear units ``a_c(x) = <w_c, x>`` (layer ``units``) and a generator ``G(z) = tanh(A z)``."""

    def __init__(
        self,
        weights: Tensor,  # [U, C, R, R]: one weight image per unit
        latent_dim: int = 16,  # size of z of the linear generator
        gain: float = 0.02,  # scale of A: small, so tanh is nearly linear and the latent answer is A^T w
        seed: int = 0,  # draws A
    ) -> None:
        super().__init__()
        self.units = nn.Linear(weights[0].numel(), weights.shape[0], bias=False)
        with torch.no_grad():
            self.units.weight.copy_(weights.flatten(1))
        g = torch.Generator().manual_seed(int(seed))
        self.register_buffer("a", gain * torch.randn(weights[0].numel(), int(latent_dim), generator=g))
        self.image_shape = tuple(weights.shape[1:])
        self.channels, self.resolution, self.latent_dim = weights.shape[1], weights.shape[-1], int(latent_dim)
        self.n_members = 0
        self.device = torch.device("cpu")

    def critic(self, x: Tensor) -> Tensor:
        return self.units(x.flatten(1)).sum(1)

    def discriminator_layers(self) -> dict[str, nn.Module]:
        return {"units": self.units}

    def generate(self, z: Tensor) -> Tensor:
        return torch.tanh(z @ self.a.T).view(z.shape[0], *self.image_shape)

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.latent_dim, generator=generator)

    def pixel_answer(self, unit: int) -> Tensor:
        """The maximiser of unit ``unit`` over ``[-1, 1]^P``: ``sign(w)``."""
        return torch.sign(self.units.weight[unit].detach()).view(self.image_shape)

    def latent_answer(self, unit: int) -> Tensor:
        """The (small-gain) maximiser direction of unit ``unit`` through ``G`` on the z sphere: ``A^T w``."""
        d = self.a.T @ self.units.weight[unit].detach()
        return d / d.norm()
