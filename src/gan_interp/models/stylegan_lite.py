"""StyleGAN-lite: a small StyleGAN2 (Karras et al. 2020) for 32/64 px images.

Generator: mapping network (PixelNorm + ``n_mapping`` equalized-lr linear layers with lr
multiplier 0.01) ``z -> w``; synthesis from a learned 4x4 constant through modulated +
demodulated 3x3 convolutions (bilinear upsampling), per-layer noise injection and skip ToRGB
outputs. One ``w`` per layer: ``ws`` has shape ``[n, n_ws, w_dim]`` with ``n_ws = 2 log2(res) - 2``
(a ToRGB shares its w with the next block's first conv, as in StyleGAN2).
Discriminator: residual blocks (two 3x3 convs, 2x average-pool down, 1x1 skip), minibatch-stddev,
3x3 conv, two linear layers. Loss: non-saturating logistic, lazy R1 on reals every ``r1_every``
minibatches (weighted by ``r1_every``; D's Adam lr/betas adjusted as in StyleGAN2), style
mixing with probability ``style_mixing_prob``, G EMA with a half-life of ``ema_kimg`` thousand
images and StyleGAN2-ADA's ramp-up (half-life at most ``ema_rampup`` x images seen), so the EMA
generator is useful from the first epochs of short runs.

Sampling (generator contract):

* ``generate(z, truncation=None)``: in *eval* mode the EMA generator with constant noise makes the
  images (deterministic in z); in train mode the trained generator with random noise. Truncation
  ``psi`` pulls w towards the tracked mean ``w_avg`` (default ``model.truncation_psi``, 1 = off).
  Outputs are clamped to [-1, 1].
* ``mapping(z, truncation)`` -> ``w [n, w_dim]``; ``synthesize(ws, style_deltas=...)`` with
  ``ws [n, n_ws, w_dim]`` (or ``[n, w_dim]``, broadcast) and optional per-layer style edits;
  ``styles(ws)`` -> per-layer style vectors (StyleSpace), ``style_layers()`` -> the affine modules;
  ``style_affine_weights()`` -> per-layer affine matrices ``[C, w_dim]``; ``sefa_weight()`` stacks
  the conv layers' ones for SeFa (directions in w). The model satisfies the
  :class:`~gan_interp.models.base.StyleSpace` protocol (``mapping``, ``synthesize``, ``n_ws``,
  ``w_dim``, ``broadcast_ws``).
* ``generator_layers()``: the synthesis layers (``b4_conv1``, ``b8_conv0``, ...) of the generator
  used in the current mode (EMA in eval); ``discriminator_layers()``: ``fromrgb``, ``b64``.., ``epilogue``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from gan_interp.errors import ConfigError
from gan_interp.models import losses
from gan_interp.models.base import GANModule
from gan_interp.models.layers import (
    EqualConv2d,
    EqualLinear,
    MinibatchStdDev,
    PixelNorm,
    StyledConv,
    ToRGB,
)


def _widths(channel_base: int, channel_max: int) -> Callable[[int], int]:
    return lambda res: max(1, min(channel_max, channel_base // res))


class MappingNetwork(nn.Module):
    """``z -> w``: PixelNorm then ``n_layers`` equalized-lr linear layers with lrelu; tracks ``w_avg``."""

    def __init__(self, z_dim: int, w_dim: int, n_layers: int, lr_mul: float = 0.01, w_avg_beta: float = 0.995) -> None:
        super().__init__()
        dims = [z_dim] + [w_dim] * n_layers
        self.net = nn.Sequential(
            PixelNorm(), *[EqualLinear(a, b, lr_mul=lr_mul, activation=True) for a, b in zip(dims[:-1], dims[1:])]
        )
        self.w_avg_beta = w_avg_beta
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: Tensor, truncation: float = 1.0, update_w_avg: bool = False) -> Tensor:
        w = self.net(z)
        if update_w_avg:
            self.w_avg.lerp_(w.detach().float().mean(0), 1.0 - self.w_avg_beta)
        if truncation != 1.0:
            w = self.w_avg.to(w.dtype) + truncation * (w - self.w_avg.to(w.dtype))
        return w


class SynthesisNetwork(nn.Module):
    """Constant 4x4 input -> styled conv layers (one w each) -> skip ToRGB sum."""

    def __init__(self, w_dim: int, resolution: int, channels: int, channel_base: int, channel_max: int) -> None:
        super().__init__()
        ch = _widths(channel_base, channel_max)
        self.resolutions = [2**i for i in range(2, int(math.log2(resolution)) + 1)]
        self.const = nn.Parameter(torch.randn(1, ch(4), 4, 4))
        self.convs = nn.ModuleDict({"b4_conv1": StyledConv(ch(4), ch(4), w_dim, 4)})
        self.torgbs = nn.ModuleDict({"b4_torgb": ToRGB(ch(4), channels, w_dim)})
        for res in self.resolutions[1:]:
            self.convs[f"b{res}_conv0"] = StyledConv(ch(res // 2), ch(res), w_dim, res, upsample=True)
            self.convs[f"b{res}_conv1"] = StyledConv(ch(res), ch(res), w_dim, res)
            self.torgbs[f"b{res}_torgb"] = ToRGB(ch(res), channels, w_dim)
        self.n_ws = len(self.convs) + 1
        # w index of every layer: convs in order; a ToRGB shares the index of the next conv
        self.w_index = {name: i for i, name in enumerate(self.convs)}
        for res in self.resolutions:
            last_conv = self.w_index["b4_conv1"] if res == 4 else self.w_index[f"b{res}_conv1"]
            self.w_index[f"b{res}_torgb"] = last_conv + 1

    def layers(self) -> dict[str, nn.Module]:
        """All style-consuming layers in forward order (convs and ToRGBs interleaved)."""
        out: dict[str, nn.Module] = {}
        for res in self.resolutions:
            for name in [f"b{res}_conv1"] if res == 4 else [f"b{res}_conv0", f"b{res}_conv1"]:
                out[name] = self.convs[name]
            out[f"b{res}_torgb"] = self.torgbs[f"b{res}_torgb"]
        return out

    def forward(self, ws: Tensor, noise_mode: str = "random") -> Tensor:
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        rgb = None
        for res in self.resolutions:
            for name in [f"b{res}_conv1"] if res == 4 else [f"b{res}_conv0", f"b{res}_conv1"]:
                x = self.convs[name](x, ws[:, self.w_index[name]], noise_mode)
            name = f"b{res}_torgb"
            rgb = self.torgbs[name](x, ws[:, self.w_index[name]], rgb)
        return rgb


class StyleGenerator(nn.Module):
    """Mapping + synthesis."""

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        n_mapping: int,
        mapping_lr_mul: float,
        w_avg_beta: float,
        resolution: int,
        channels: int,
        channel_base: int,
        channel_max: int,
    ) -> None:
        super().__init__()
        self.mapping = MappingNetwork(z_dim, w_dim, n_mapping, mapping_lr_mul, w_avg_beta)
        self.synthesis = SynthesisNetwork(w_dim, resolution, channels, channel_base, channel_max)


class DBlock(nn.Module):
    """Residual discriminator block: conv3x3, conv3x3, avg-pool /2; skip = avg-pool, 1x1 conv."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(in_ch, in_ch, 3, activation=True)
        self.conv1 = EqualConv2d(in_ch, out_ch, 3, activation=True)
        self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False)
        self.down = nn.AvgPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        y = self.down(self.conv1(self.conv0(x)))
        return (y + self.skip(self.down(x))) / math.sqrt(2.0)


class Epilogue(nn.Module):
    """4x4: minibatch-stddev, conv3x3, flatten, linear, linear -> score."""

    def __init__(self, ch: int, mbstd_group: int) -> None:
        super().__init__()
        self.mbstd = MinibatchStdDev(mbstd_group, 1)
        self.conv = EqualConv2d(ch + 1, ch, 3, activation=True)
        self.fc = EqualLinear(ch * 16, ch, activation=True)
        self.out = EqualLinear(ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.fc(self.conv(self.mbstd(x)).flatten(1)))


class StyleDiscriminator(nn.Module):
    def __init__(
        self, resolution: int, channels: int, channel_base: int, channel_max: int, mbstd_group: int = 4
    ) -> None:
        super().__init__()
        ch = _widths(channel_base, channel_max)
        self.fromrgb = EqualConv2d(channels, ch(resolution), 1, activation=True)
        res_list = [2**i for i in range(int(math.log2(resolution)), 2, -1)]  # res .. 8
        self.blocks = nn.ModuleDict({f"b{r}": DBlock(ch(r), ch(r // 2)) for r in res_list})
        self.epilogue = Epilogue(ch(4), mbstd_group)

    def layers(self) -> dict[str, nn.Module]:
        return {"fromrgb": self.fromrgb, **dict(self.blocks.items()), "epilogue": self.epilogue}

    def forward(self, x: Tensor) -> Tensor:
        x = self.fromrgb(x)
        for block in self.blocks.values():
            x = block(x)
        return self.epilogue(x).flatten()


class StyleGANLite(GANModule):
    """StyleGAN2-style generator and discriminator trained with the logistic loss + lazy R1."""

    supported_resolutions = (32, 64)
    uses_double_backward = True

    def __init__(
        self,
        latent_dim: int = 256,  # z size
        w_dim: int = 256,  # w size
        n_mapping: int = 4,  # mapping layers (2-4 for 'lite')
        mapping_lr_mul: float = 0.01,  # mapping-network learning-rate multiplier
        channel_base: int = 4096,  # feature maps at resolution r: min(channel_max, channel_base // r)
        channel_max: int = 256,
        resolution: int = 32,
        channels: int = 3,
        lr: float = 2e-3,  # Adam lr (D's is scaled by r1_every / (r1_every + 1))
        betas: tuple[float, float] = (0.0, 0.99),
        r1_gamma: float = 1.0,  # R1 weight gamma (penalty gamma / 2 * ||grad D(x)||^2)
        r1_every: int = 16,  # lazy regularisation interval (minibatches)
        style_mixing_prob: float = 0.9,  # probability of mixing two w at a random crossover layer
        ema_kimg: float = 10.0,  # G EMA half-life in thousands of images (StyleGAN2-ADA)
        ema_rampup: float | None = 0.05,  # half-life <= rampup * images seen so far (None: off)
        w_avg_beta: float = 0.995,  # decay of the tracked mean w (truncation centre)
        truncation_psi: float = 1.0,  # default truncation at sampling time (1 = none)
        mbstd_group: int = 4,  # minibatch-stddev group size
        use_ema: bool = True,  # eval-mode generation uses the EMA generator
        interpretable: dict | None = None,  # Interpretable-GAN option: {enabled, layer, n_concepts, lambda_*...}
        n_fixed: int = 64,
        fixed_seed: int = 1234,
        name: str = "stylegan_lite",
    ) -> None:
        super().__init__(latent_dim, resolution, channels, n_fixed, fixed_seed, name=name)
        if int(n_mapping) < 1:
            raise ConfigError(f"model.n_mapping={n_mapping} must be >= 1 (StyleGAN-lite uses 2-4)")
        if int(r1_every) < 1:
            raise ConfigError(f"model.r1_every={r1_every} must be >= 1")
        if not 0.0 <= float(style_mixing_prob) <= 1.0:
            raise ConfigError(f"model.style_mixing_prob={style_mixing_prob} must be in [0, 1]")
        self.save_hyperparameters(logger=False)  # the run logs its whole resolved config once (training.py)
        self.hparams.betas = tuple(float(b) for b in betas)  # plain floats: optimizer state loads with weights_only
        self.generator = StyleGenerator(
            latent_dim, w_dim, n_mapping, mapping_lr_mul, w_avg_beta, resolution, channels, channel_base, channel_max
        )
        self.discriminator = StyleDiscriminator(resolution, channels, channel_base, channel_max, mbstd_group)
        self.init_ema()
        self.n_ws = self.generator.synthesis.n_ws
        self.d_steps = 0
        self.images_seen = 0  # real images consumed (drives the EMA ramp-up)
        self.init_interpretable(interpretable)  # hooks the training generator's chosen layer

    # -- generator contract ------------------------------------------------------------------------
    @property
    def w_avg(self) -> Tensor:
        return self.g_eval.mapping.w_avg

    def mapping(self, z: Tensor, truncation: float | None = None) -> Tensor:
        """``z [n, latent_dim] -> w [n, w_dim]`` (truncated towards ``w_avg`` if psi != 1)."""
        psi = self.truncation_psi if truncation is None else float(truncation)
        return self.g_eval.mapping(z, psi)

    def broadcast_ws(self, w: Tensor) -> Tensor:
        """``[n, w_dim]`` -> ``[n, n_ws, w_dim]`` (``[n, n_ws, w_dim]`` passes through)."""
        return w[:, None].expand(-1, self.n_ws, -1) if w.dim() == 2 else w

    def synthesize(
        self,
        ws: Tensor,  # [n, n_ws, w_dim] per-layer w, or [n, w_dim] (same w for every layer)
        noise_mode: str | None = None,  # 'const' (eval default), 'random' (train default) or 'none'
        style_deltas: dict[str, Tensor] | None = None,  # layer name -> [C] or [n, C] added to its style
    ) -> Tensor:
        """Images in [-1, 1] from per-layer ws; ``style_deltas`` edit StyleSpace (per-layer styles)."""
        mode = noise_mode or ("random" if self.training else "const")
        affines = self.style_layers()
        unknown = set(style_deltas or {}) - set(affines)
        if unknown:
            raise ConfigError(f"style_deltas names unknown layers {sorted(unknown)}; use names from styles()")
        hooks = [
            affines[name].register_forward_hook(lambda mod, inp, out, d=delta: out + d.to(out))
            for name, delta in (style_deltas or {}).items()
        ]
        try:
            return self.g_eval.synthesis(self.broadcast_ws(ws), mode).clamp(-1, 1)
        finally:
            for h in hooks:
                h.remove()

    def generate(self, z: Tensor, truncation: float | None = None) -> Tensor:
        return self.synthesize(self.mapping(z, truncation))

    def critic(self, x: Tensor) -> Tensor:
        return self.discriminator(x)

    def styles(self, ws: Tensor) -> dict[str, Tensor]:
        """Per-layer style vectors ``s = A(w)`` (StyleSpace), ``name -> [n, in_channels]``."""
        ws = self.broadcast_ws(ws)
        syn = self.g_eval.synthesis
        return {name: layer.conv.affine(ws[:, syn.w_index[name]]) for name, layer in syn.layers().items()}

    def style_layers(self) -> dict[str, nn.Module]:
        """The affine ``w -> style`` module of every layer (hook its output to edit styles)."""
        return {name: layer.conv.affine for name, layer in self.g_eval.synthesis.layers().items()}

    def style_affine_weights(self) -> dict[str, Tensor]:
        """Effective affine matrices ``[in_channels, w_dim]`` per layer (input of SeFa)."""
        return {
            name: layer.conv.affine.effective_weight().detach()
            for name, layer in self.g_eval.synthesis.layers().items()
        }

    def sefa_weight(self, layers: list[str] | None = None) -> tuple[Tensor, str]:
        """SeFa input: the style affines of ``layers`` (default: every conv, no ToRGB) stacked,
        ``[sum C, w_dim]`` in Linear layout, tagged as acting on ``'w'`` (Shen & Zhou 2021)."""
        weights = self.style_affine_weights()
        names = list(self.g_eval.synthesis.convs) if layers is None else list(layers)
        unknown = set(names) - set(weights)
        if unknown:
            raise ConfigError(f"sefa layers {sorted(unknown)} are unknown; choose from {', '.join(weights)}")
        return torch.cat([weights[n] for n in names]), "w"

    def discriminator_input_conv(self) -> nn.Module:
        """The equalized-lr 1x1 ``fromrgb`` convolution (sees the pixels)."""
        return self.discriminator.fromrgb

    def generator_layers(self) -> dict[str, nn.Module]:
        """Synthesis conv layers of the generator ``generate`` uses now (EMA in eval mode)."""
        return dict(self.g_eval.synthesis.convs.items())

    def discriminator_layers(self) -> dict[str, nn.Module]:
        return self.discriminator.layers()

    # -- training ----------------------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        c = hp.r1_every / (hp.r1_every + 1)  # lazy regularisation (StyleGAN2, appendix B)
        g_groups = [{"params": self.generator.parameters()}, *self.interpretable_param_groups()]
        opt_g = torch.optim.Adam(g_groups, lr=hp.lr, betas=hp.betas)
        d_betas = (hp.betas[0] ** c, hp.betas[1] ** c)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr * c, betas=d_betas)
        return opt_g, opt_d

    def _training_ws(self, n: int, update_w_avg: bool) -> Tensor:
        """ws for training fakes: one w per sample, mixed with a second w after a random layer."""
        g = self.generator
        ws = self.broadcast_ws(g.mapping(self.sample_z(n), update_w_avg=update_w_avg))
        if self.n_ws > 1 and float(torch.rand(())) < self.hparams.style_mixing_prob:
            cut = int(torch.randint(1, self.n_ws, ()))
            w2 = g.mapping(self.sample_z(n))
            ws = torch.cat([ws[:, :cut], w2[:, None].expand(-1, self.n_ws - cut, -1)], dim=1)
        return ws

    def _fake(self, n: int, update_w_avg: bool = False) -> Tensor:
        return self.generator.synthesis(self._training_ws(n, update_w_avg), "random")

    def ema_beta(self, batch_size: int) -> float:
        """EMA decay for one step of ``batch_size`` images: ``0.5 ** (batch / half_life)``, with the
        half-life ``ema_kimg * 1000`` images, capped at ``ema_rampup * images_seen`` early on."""
        half_life = self.hparams.ema_kimg * 1000.0
        if self.hparams.ema_rampup is not None:
            half_life = min(half_life, self.images_seen * self.hparams.ema_rampup)
        return 0.5 ** (batch_size / max(half_life, 1e-8))

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        real = batch["image"]
        n = real.shape[0]

        # discriminator: logistic loss, plus lazy R1 on reals every r1_every minibatches
        _, d_loss, real_scores, fake_scores = self.optimizer_update(opt_d, lambda: self._d_loss(real))
        self.d_steps += 1

        # generator: non-saturating loss, then EMA
        def g_loss() -> Tensor:
            g_scores = self.critic(self._fake(n, update_w_avg=True))
            return losses.g_nonsaturating_loss(g_scores.float()) + self.interpretable_loss()

        g_loss_value = self.optimizer_update(opt_g, g_loss)
        self.images_seen += n
        self.update_ema(self.ema_beta(n))
        self.finish_generator_step()

        self.log_adversarial_step(d_loss, g_loss_value, real_scores, fake_scores)

    def _d_loss(self, real: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(total, logistic loss, real scores, fake scores)``: logistic loss + lazy R1 on reals every
        ``r1_every`` minibatches (weighted by ``r1_every``)."""
        r1_gamma, r1_every = self.hparams.r1_gamma, self.hparams.r1_every
        with torch.no_grad():
            fake = self._fake(real.shape[0])
        do_r1 = r1_gamma > 0 and self.d_steps % r1_every == 0
        real_in = real.detach().requires_grad_(do_r1)
        real_scores, fake_scores = self.critic(real_in), self.critic(fake)
        d_loss = losses.d_logistic_loss(real_scores.float(), fake_scores.float())
        total = d_loss
        if do_r1:
            r1 = losses.r1_penalty(real_scores, real_in).mean()
            total = d_loss + 0.5 * r1_gamma * r1_every * r1
            self.log("train/r1", r1.detach(), on_step=True, on_epoch=True)
        return total, d_loss, real_scores, fake_scores

    # -- checkpoint --------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["d_steps"] = self.d_steps
        checkpoint["images_seen"] = self.images_seen

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.d_steps = int(checkpoint.get("d_steps", 0))
        self.images_seen = int(checkpoint.get("images_seen", 0))

    # -- hyperparameters the generator contract reads ----------------------------------------------
    @property
    def w_dim(self) -> int:
        """Size of one w (``model.w_dim``)."""
        return self.hparams.w_dim

    @property
    def truncation_psi(self) -> float:
        """Default truncation of ``generate`` / ``mapping`` (``model.truncation_psi``, 1 = none)."""
        return self.hparams.truncation_psi

    @property
    def use_ema(self) -> bool:
        """Eval-mode generation uses the EMA generator (``model.use_ema``)."""
        return self.hparams.use_ema


__all__ = ["MappingNetwork", "StyleDiscriminator", "StyleGANLite", "StyleGenerator", "SynthesisNetwork"]
