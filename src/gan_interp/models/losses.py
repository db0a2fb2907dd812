"""Pure GAN loss functions (no module state): tensors in, scalar tensors out.

Scores are raw critic/discriminator outputs (logits), shape ``[N]`` or ``[N, 1]``.
Penalties that differentiate through gradients (WGAN-GP, R1) use double backward: run them in
fp32 or bf16-mixed, never fp16; an epsilon keeps the gradient norm differentiable at 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

GRAD_NORM_EPS = 1e-12


def d_logistic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Standard discriminator loss: -log D(x) - log(1 - D(G(z))), D = sigmoid(score)."""
    return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()


def g_nonsaturating_loss(fake_scores: Tensor) -> Tensor:
    """Non-saturating generator loss: -log D(G(z))."""
    return F.softplus(-fake_scores).mean()


def wgan_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Wasserstein critic loss (minimised): E[f(G(z))] - E[f(x)]."""
    return fake_scores.mean() - real_scores.mean()


def wgan_generator_loss(fake_scores: Tensor) -> Tensor:
    """Wasserstein generator loss: -E[f(G(z))]."""
    return -fake_scores.mean()


def per_sample_grad_norm(outputs: Tensor, inputs: Tensor, groups: int = 1) -> Tensor:
    """||d sum(outputs) / d inputs_i||_2 for every sample i (graph kept for double backward); ``[N]``.

    ``groups > 1``: the inputs' dim 1 holds ``groups`` equal blocks (independent critics side by side,
    as k-GAN's grouped critic); the norm is taken per block: ``[N, groups]``.
    """
    (grad,) = torch.autograd.grad(outputs=outputs.sum(), inputs=inputs, create_graph=True)
    if groups == 1:
        return torch.sqrt(grad.flatten(1).pow(2).sum(1) + GRAD_NORM_EPS)
    return torch.sqrt(grad.reshape(grad.shape[0], groups, -1).pow(2).sum(2) + GRAD_NORM_EPS)


def gradient_penalty(
    critic, real: Tensor, fake: Tensor, generator: torch.Generator | None = None, groups: int = 1
) -> Tensor:
    """WGAN-GP penalty per sample, ``(||grad f(x_hat)|| - 1)^2`` on random interpolates; shape [N].

    Multiply the mean by lambda (10 in Gulrajani et al. 2017). ``groups > 1``: ``groups`` independent
    critics side by side (inputs ``[N, groups * C, ...]``, scores ``[N, groups]``), each with its own
    interpolation weights and gradient norm; shape ``[N, groups]``.
    """
    n = real.shape[0]
    if groups == 1:
        alpha = torch.rand(n, *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype, generator=generator)
    else:
        alpha = torch.rand(n, groups, device=real.device, dtype=real.dtype, generator=generator)
        alpha = alpha.repeat_interleave(real.shape[1] // groups, dim=1).reshape(n, -1, *([1] * (real.dim() - 2)))
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    return (per_sample_grad_norm(scores.float(), x_hat, groups) - 1.0).pow(2)


def wgan_gp_critic_losses(
    critic,  # images -> scores [N, groups] ([N] or [N, 1] for one critic)
    real: Tensor,  # [N, groups * C, H, W]: ``groups`` critics' inputs side by side (k-GAN's grouped layout)
    fake: Tensor,  # same layout
    gp_lambda: float,  # WGAN-GP weight
    groups: int = 1,  # independent critics
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """WGAN-GP critic losses of ``groups`` independent critics: ``(sum, per critic [groups]: loss, GP, WGAN loss)``.

    Per critic: :func:`wgan_critic_loss` + ``gp_lambda`` x mean :func:`gradient_penalty`. The sum is what one
    optimizer over all critics minimises: each critic's weights get exactly its own loss's gradient.
    """
    n = real.shape[0]
    real_s, fake_s = critic(real).float().reshape(n, groups), critic(fake).float().reshape(n, groups)
    gp = gradient_penalty(critic, real, fake, groups=groups).reshape(n, groups).mean(0)
    w_loss = fake_s.mean(0) - real_s.mean(0)
    loss = w_loss + gp_lambda * gp
    return loss.sum(), loss, gp, w_loss


def wgan_generator_losses(fake_scores: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`wgan_generator_loss` of every column of ``fake_scores [N, groups]``: ``(sum, per column)``."""
    per_column = -fake_scores.float().mean(0)
    return per_column.sum(), per_column


def r1_penalty(real_scores: Tensor, real: Tensor) -> Tensor:
    """R1 penalty per sample, ``||grad D(x)||^2`` on real data (``real`` must require grad); shape [N].

    Multiply the mean by gamma / 2 (Mescheder et al. 2018).
    """
    (grad,) = torch.autograd.grad(outputs=real_scores.float().sum(), inputs=real, create_graph=True)
    return grad.flatten(1).pow(2).sum(1)


def d_hinge_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Hinge discriminator loss (Lim & Ye 2017; SN-GAN, BigGAN): relu(1 - D(x)) + relu(1 + D(G(z)))."""
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def g_hinge_loss(fake_scores: Tensor) -> Tensor:
    """Hinge generator loss: -D(G(z))."""
    return -fake_scores.mean()
