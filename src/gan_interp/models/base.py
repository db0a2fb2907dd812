"""The GAN base LightningModule and the generator contract every probe relies on.

Contract (all models):

* ``latent_dim`` - size of one latent vector ``z``;
* ``sample_z(n, generator=None)`` - ``n`` latents on the module's device; with a seeded
  ``torch.Generator`` (CPU) the result is reproducible on any device;
* ``generate(z)`` - images in ``[-1, 1]``, shape ``[n, channels, resolution, resolution]``;
* ``critic(x)`` - raw discriminator/critic scores ``[n]`` (higher = more "real");
* ``generator_layers()`` / ``discriminator_layers()`` - named modules probes may hook;
* ``sefa_weight()`` - ``(weight, space)`` SeFa decomposes (default: the first ``Linear`` /
  ``ConvTranspose2d`` of ``generator_layers()``, where z enters; space ``'z'``);
* ``discriminator_input_conv()`` - the convolution that sees the pixels (default: the first
  ``nn.Conv2d`` of ``discriminator_layers()``; ``None`` if there is none);
* ``n_members`` / ``member_view(j)`` - ensemble members (0 / an error by default; k-GAN: k / one
  member as a stand-alone :class:`GANModule`); an ensemble also says who makes and who scores each
  row: ``route_members(z)``, ``route_images(x)``, ``generate(z, member=...)``, ``critic(x, member=...)``.

Models with a style space (StyleGAN-like) also satisfy the :class:`StyleSpace` protocol; test it
with :func:`has_style_space`.

Training uses manual optimization (two or more optimizers): every update goes through
:meth:`GANModule.optimizer_update`. ``g_steps`` counts generator updates: Lightning's
``global_step`` counts every optimizer step (D and G), so it is not used for that.

Hyperparameters: subclasses call ``save_hyperparameters(logger=False)`` and read them as
``self.hparams.<name>`` (values that need a cast are normalised in ``self.hparams`` once, right after
saving); ``logger=False``: the loggers get the run's whole resolved config once, with the model's
settings under ``model.*``, not a second copy at the top level. The image
sides a model can make are its class attribute ``supported_resolutions``, checked in one place:
:meth:`GANModule.check_resolution` (by ``__init__`` and by the config check before any data is built).
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

import lightning as L
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import Tensor, nn

from gan_interp.errors import ConfigError

LossOutput = TypeVar("LossOutput", Tensor, tuple)  # a loss, or (loss, *values the caller wants back)


@runtime_checkable
class StyleSpace(Protocol):
    """The style-space part of the generator contract (StyleGAN-like models): ``z -> w -> ws -> images``."""

    n_ws: int  # number of per-layer w inputs of ``synthesize``
    w_dim: int  # size of one w

    def mapping(self, z: Tensor, truncation: float | None = None) -> Tensor:
        """``z [n, latent_dim] -> w [n, w_dim]``."""

    def synthesize(self, ws: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """Images in [-1, 1] from ``ws [n, n_ws, w_dim]`` (or ``[n, w_dim]``, broadcast to every layer)."""

    def broadcast_ws(self, w: Tensor) -> Tensor:
        """``w [n, w_dim] -> ws [n, n_ws, w_dim]`` (the same w for every layer)."""


def has_style_space(model: Any) -> bool:
    """Whether ``model`` satisfies :class:`StyleSpace` (has mapping, synthesize, n_ws, w_dim, broadcast_ws)."""
    return isinstance(model, StyleSpace)


class GANModule(L.LightningModule):
    """Base class: generator contract, generator-step counter, fixed validation latents."""

    supported_resolutions: tuple[int, ...] = (32, 64, 128)  # image sides the model can make (models declare theirs)
    uses_double_backward: bool = False  # True for WGAN-GP / R1 models (no fp16 then)

    def __init__(
        self,
        latent_dim: int,  # size of z
        resolution: int,  # output image side length (pixels)
        channels: int,  # output image channels (3 RGB, 1 gray)
        n_fixed: int = 64,  # number of fixed latents used for sample grids and probes
        fixed_seed: int = 1234,  # seed of the fixed latents (independent of the training seed)
        name: str | None = None,  # config name of the model (model.name), for error messages
    ) -> None:
        super().__init__()
        self.check_resolution(int(resolution), name or type(self).__name__)
        self.automatic_optimization = False
        self.latent_dim = int(latent_dim)
        self.resolution = int(resolution)
        self.channels = int(channels)
        self.n_fixed = int(n_fixed)
        self.fixed_seed = int(fixed_seed)
        self.g_steps = 0
        self.interpretable: nn.Module | None = None  # Interpretable-GAN regulariser (init_interpretable)
        self.g_ema: nn.Module | None = None  # EMA copy of self.generator (init_ema)

    # -- generator contract --------------------------------------------------------------------
    def sample_z(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` standard-normal latents ``[n, latent_dim]`` on this module's device."""
        return torch.randn(n, self.latent_dim, generator=generator).to(self.device)

    @abstractmethod
    def generate(self, z: Tensor) -> Tensor:
        """Images in [-1, 1] from latents ``z``."""

    @abstractmethod
    def critic(self, x: Tensor) -> Tensor:
        """Raw discriminator scores ``[n]`` for images ``x``."""

    def generator_layers(self) -> dict[str, nn.Module]:
        """Named generator layers for activation probes (override for a curated list)."""
        return {}

    def discriminator_layers(self) -> dict[str, nn.Module]:
        """Named discriminator layers for activation probes (override for a curated list)."""
        return {}

    @property
    def n_members(self) -> int:
        """Number of ensemble members (0: a single generator/discriminator pair)."""
        return 0

    def member_view(self, j: int) -> GANModule:
        """Member ``j`` as a stand-alone :class:`GANModule` (only models with ``n_members > 0``)."""
        raise ConfigError(f"model {type(self).__name__} has no members (member={j}); member views need a k-GAN")

    def sefa_weight(self) -> tuple[Tensor, str]:
        """``(weight, space)`` SeFa decomposes: the first ``Linear``/``ConvTranspose2d`` of
        ``generator_layers()`` (in their order), where z enters; space ``'z'``."""
        for layer in self.generator_layers().values():
            for m in layer.modules():
                if isinstance(m, (nn.Linear, nn.ConvTranspose2d)):
                    return m.weight.detach(), "z"
        raise ValueError(
            f"{type(self).__name__}: no Linear/ConvTranspose2d in generator_layers(); override sefa_weight()"
        )

    def discriminator_input_conv(self) -> nn.Module | None:
        """The convolution that sees the pixels: the first ``nn.Conv2d`` of ``discriminator_layers()``."""
        for layer in self.discriminator_layers().values():
            for m in layer.modules():
                if isinstance(m, nn.Conv2d):
                    return m
        return None

    def fixed_latents(self, n: int | None = None) -> Tensor:
        """The same ``n`` latents every time (seeded by ``fixed_seed``)."""
        g = torch.Generator().manual_seed(self.fixed_seed)
        return self.sample_z(self.n_fixed if n is None else n, generator=g)

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> Tensor:
        """Generate ``n`` images (eval-mode behaviour is the caller's choice)."""
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.generate(self.sample_z(n, generator=g))

    # -- training helpers ------------------------------------------------------------------------
    def optimizer_update(
        self,
        opt: torch.optim.Optimizer | LightningOptimizer,  # the optimizer to step (one of self.optimizers())
        loss_fn: Callable[[], LossOutput],  # forward pass: the loss, or (loss, *extras)
    ) -> LossOutput:
        """One update of ``opt``'s parameters; the only place the manual-optimization sequence is written.

        1. ``toggle_optimizer(opt)``: the other optimizers' parameters stop requiring gradients;
        2. ``out = loss_fn()``: the forward pass, run under the toggle. ``out`` is the loss, or a
           tuple ``(loss, *extras)`` whose extras (scores, loss parts) the caller wants back;
        3. ``opt.zero_grad(set_to_none=True)``, ``manual_backward(loss)``, ``opt.step()``;
        4. ``untoggle_optimizer(opt)`` (also when a step raises).

        Returns ``out`` with every tensor in it detached. Random draws happen only inside ``loss_fn``,
        in its own order, so a step written with this helper draws what the hand-written block drew.
        """
        self.toggle_optimizer(opt)
        try:
            out = loss_fn()
            loss = out[0] if isinstance(out, tuple) else out
            opt.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            opt.step()
        finally:
            self.untoggle_optimizer(opt)
        if isinstance(out, tuple):
            return tuple(v.detach() if isinstance(v, Tensor) else v for v in out)  # type: ignore[return-value]
        return out.detach()

    def finish_generator_step(self) -> None:
        """Call once per generator update (keeps ``g_steps``)."""
        self.g_steps += 1

    # -- EMA of the generator weights (Karras et al. 2018), what eval mode reads ------------------
    def init_ema(self) -> None:
        """Keep ``g_ema``, an exponential moving average of ``self.generator`` (call after building it).

        :attr:`g_eval` is the generator every reader uses: in eval mode (samples, metrics, probes, validation)
        the EMA copy when :attr:`use_ema`, in train mode the trained one. ``g_ema`` is a submodule, so
        checkpoints carry it. The model moves it with :meth:`update_ema` after each generator step.
        """
        self.g_ema = copy.deepcopy(self.generator).requires_grad_(False)

    @property
    def use_ema(self) -> bool:
        """Eval mode reads the EMA generator (models with an on/off option override this)."""
        return self.g_ema is not None

    @property
    def g_eval(self) -> nn.Module:
        """The generator to read now: ``g_ema`` in eval mode when :attr:`use_ema`, else ``self.generator``."""
        return self.g_ema if (self.g_ema is not None and self.use_ema and not self.training) else self.generator

    @torch.no_grad()
    def update_ema(self, beta: float) -> None:
        """``ema <- beta * ema + (1 - beta) * weights`` for parameters; buffers (BatchNorm statistics) copied."""
        for p_ema, p in zip(self.g_ema.parameters(), self.generator.parameters()):
            p_ema.lerp_(p.detach(), 1.0 - beta)
        for b_ema, b in zip(self.g_ema.buffers(), self.generator.buffers()):
            b_ema.copy_(b)

    # ``g_steps`` in every row Lightning logs (step rows, the epoch's training row, the validation row),
    # next to the ``epoch`` Lightning adds: the axes of gan_interp.logging_utils
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.log("g_steps", float(self.g_steps), on_step=True, on_epoch=False)

    def on_train_epoch_end(self) -> None:
        self.log("g_steps", float(self.g_steps), on_step=False, on_epoch=True)

    def on_validation_epoch_end(self) -> None:
        self.log("g_steps", float(self.g_steps), on_step=False, on_epoch=True)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Mean raw critic score on validation images and on fakes (``val/critic_*``: a logit for the
        non-saturating GANs, a Wasserstein critic value for k-GAN; ``train/d_real`` is a probability)."""
        real = batch["image"]
        g = torch.Generator().manual_seed(self.fixed_seed + 1 + batch_idx)
        fake = self.generate(self.sample_z(real.shape[0], generator=g))
        d_real, d_fake = self.critic(real).float().mean(), self.critic(fake).float().mean()
        self.log_dict(
            {"val/critic_real": d_real, "val/critic_fake": d_fake, "val/critic_gap": d_real - d_fake}, on_epoch=True
        )

    # -- configuration checks ----------------------------------------------------------------------
    @classmethod
    def check_resolution(cls, resolution: int, name: str) -> None:
        """One-line :class:`ConfigError` unless ``resolution`` is in ``supported_resolutions``."""
        if resolution not in cls.supported_resolutions:
            supported = ", ".join(map(str, cls.supported_resolutions))
            raise ConfigError(f"data.resolution={resolution} cannot be made by model {name}; use one of {supported}")

    # -- Interpretable-GAN option (Li et al. 2022; gan_interp.models.interpretable) ---------------
    def init_interpretable(self, cfg: Any) -> None:
        """Call after building the generator: hooks ``cfg.layer`` when ``cfg.enabled`` (else no-op)."""
        from gan_interp.models.interpretable import attach_interpretable

        self.interpretable = attach_interpretable(self, cfg)

    def interpretable_param_groups(self) -> list[dict]:
        """Extra param group (the energy weights W, own lr) for the generator optimizer; [] if off."""
        reg = self.interpretable
        return [] if reg is None else [{"params": list(reg.parameters()), "lr": reg.lr}]

    def interpretable_loss(self) -> Tensor | float:
        """Add to the generator loss: the regulariser on the hooked layer's last training forward (0 if off)."""
        if self.interpretable is None:
            return 0.0
        loss, parts = self.interpretable.loss_from_last_forward(self.g_steps)
        self.log_dict({f"train/interp_{k}": v for k, v in parts.items()}, on_step=True, on_epoch=False)
        return loss

    def log_adversarial_step(self, d_loss: Tensor, g_loss: Tensor, real_scores: Tensor, fake_scores: Tensor) -> None:
        """Per-step and per-epoch losses and mean D(x) = sigmoid(score) on real / fake (non-saturating GANs)."""
        self.log_dict(
            {
                "train/d_loss": d_loss.detach(),
                "train/g_loss": g_loss.detach(),
                "train/d_real": torch.sigmoid(real_scores.detach().float()).mean(),
                "train/d_fake": torch.sigmoid(fake_scores.detach().float()).mean(),
            },
            on_step=True,
            on_epoch=True,
            prog_bar=True,
        )

    # -- checkpoint state ------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["g_steps"] = self.g_steps
        if "hyper_parameters" in checkpoint:  # plain Python types: loadable with weights_only=True
            checkpoint["hyper_parameters"] = to_primitive(checkpoint["hyper_parameters"])

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.g_steps = int(checkpoint.get("g_steps", 0))


def to_primitive(value: Any) -> Any:
    """OmegaConf containers / tuples -> plain dicts, lists and scalars (safe for weights_only loads)."""
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, dict):
        return {str(k): to_primitive(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_primitive(v) for v in value]
    return value


def init_dcgan_weights(module: nn.Module) -> None:
    """Radford et al. init: conv weights ~ N(0, 0.02); batch-norm gamma ~ N(1, 0.02), beta = 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
