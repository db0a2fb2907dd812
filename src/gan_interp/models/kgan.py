"""k-GAN (Ambrogioni, Güçlü & van Gerven 2019): an ensemble of k WGAN-GP pairs, one per data cell.

Training data are split into k cells by a balanced power-cell partition (semi-discrete optimal
transport, :mod:`gan_interp.models.partition`; the state is one
:class:`~gan_interp.models.kgan_partition.KGANPartition` module, ``model.partition``) in a feature
space (default: 8x8 area-downsampled pixels). Sites are the cells' centroids (k-means/Lloyd
update); offsets keep every cell at 1/k of the training set exactly (sizes differ by at most one
image). The partition is computed at the start of epoch 0 (k-means++ seeding + ``init_iters``
Lloyd rounds) and recomputed every ``repartition_every`` epochs (one Lloyd round, warm-started
offsets). Empty cells cannot occur in a balanced partition; with ``balanced=false`` (plain Voronoi
cells) they are re-seeded.

Each member j is a WGAN-GP pair (lambda 10, Adam(1e-4, betas (0, 0.9))) trained on the batch rows
of its own cell only; a member without rows in a batch skips that batch. Critic steps happen every
batch, generator steps on every ``n_critic``-th batch (batches 0, n_critic, 2 n_critic, ... of
the run), i.e. ``n_critic`` critic updates per generator update; ``g_steps`` counts these rounds.

Baselines (``-m model.k=1,3 model.independent=false,true``): ``k=1`` is one WGAN-GP on all data;
``independent=true`` trains k members each on *all* data (the partition is still computed and
logged, and routes ``critic(x)``, but does not select training data).

The cell medoids, member samples and ``partition.json`` of ``<run>/kgan/epoch_XXX/`` are written by
:class:`gan_interp.callbacks.kgan_epoch_images.KGANEpochImages`.

Generator contract (what probes see):

* ``generate(z)`` routes each latent to one member, deterministically: with ``u = Phi(z[:, 0])``
  and bins of widths = the cell weights (1/k each when balanced; uniform for ``independent``),
  ``member = bin(u)``; ``z[:, 0]`` is then replaced by ``Phi^-1`` of ``u``'s position inside its bin,
  so the member sees a standard normal z and ``generate(sample_z(n))`` samples the mixture.
  ``generate(z, member=j)`` uses member j for all rows (no routing, z unchanged).
* ``critic(x)`` scores each image with the critic of the cell the image falls in (power cells of
  its features); ``critic(x, member=j)`` uses member j's critic.
* ``generator_layers()`` / ``discriminator_layers()`` return *taps* named after the stages
  (``fc``, ``block0``, ...): identity modules the routed full batch passes through, so hooks see
  ``[n, ...]`` activations of whichever member made each row. ``generator_layers(member=j)``
  returns member j's own stages named ``m{j}.<stage>``; ``member_view(j)`` is a one-member
  :class:`GANModule` for probes that should look at one member only (``n_members = k``).
  Weight-based probes see member 0: ``sefa_weight(member=0)``, ``discriminator_input_conv()``.

Before the first partition exists (a fresh module, no training yet) ``critic(x)`` sends every
image to member 0; ``generate(z)`` routes with uniform bins.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gan_interp.errors import ConfigError
from gan_interp.models import losses
from gan_interp.models import partition as P
from gan_interp.models.base import GANModule
from gan_interp.models.kgan_nets import Member, routed_forward
from gan_interp.models.kgan_partition import KGANPartition

FEATURE_CHUNK = 512  # images per chunk when computing training-set features


class KGAN(GANModule):
    """Ensemble of k WGAN-GP generator/critic pairs on a balanced optimal-transport partition."""

    supported_resolutions = (32, 64)
    uses_double_backward = True

    def __init__(
        self,
        latent_dim: int = 100,  # size of z (shared by all members)
        k: int = 3,  # ensemble size (k=1: plain WGAN-GP baseline)
        arch: str = "thesis",  # 'thesis' (linear + 3 deconv / 2 conv + linear) or 'dcgan'
        ngf: int = 64,  # generator width unit
        ndf: int = 64,  # critic width unit
        resolution: int = 32,  # image side (32 or 64)
        channels: int = 3,  # image channels
        lr: float = 1e-4,  # Adam learning rate (all nets)
        betas: tuple[float, float] = (0.0, 0.9),  # Adam betas (Gulrajani et al. 2017)
        n_critic: int = 5,  # critic updates per generator update
        gp_lambda: float = 10.0,  # WGAN-GP weight
        independent: bool = False,  # baseline: every member trains on all data
        repartition_every: int = 1,  # recompute the partition every R epochs
        balanced: bool = True,  # False: plain Voronoi cells (unbalanced; empty cells re-seeded)
        feature_space: str = "pixels",  # 'pixels' (RGB) or 'gray' downsampled images as OT features
        feature_size: int = 8,  # side of the downsampled feature image
        init_iters: int = 5,  # Lloyd rounds when the partition is first built
        n_sweeps: int = 20,  # dual coordinate-ascent sweeps per OT solve (then exact repair)
        partition_seed: int = 0,  # seed of the k-means++ site initialisation
        n_fixed: int = 64,  # fixed latents for sample grids and probes
        fixed_seed: int = 1234,  # seed of the fixed latents
        name: str = "kgan",  # config name (model.name)
    ) -> None:
        super().__init__(latent_dim, resolution, channels, n_fixed, fixed_seed, name=name)
        if int(k) < 1:
            raise ConfigError(f"model.k={k} must be >= 1")
        if int(n_critic) < 1:
            raise ConfigError(f"model.n_critic={n_critic} must be >= 1")
        if int(repartition_every) < 1:
            raise ConfigError(f"model.repartition_every={repartition_every} must be >= 1")
        if feature_space not in P.FEATURE_SPACES:
            spaces = ", ".join(P.FEATURE_SPACES)
            raise ConfigError(f"model.feature_space={feature_space!r} is unknown; use one of {spaces}")
        self.save_hyperparameters(logger=False)  # the run logs its whole resolved config once (training.py)
        self.hparams.betas = tuple(float(b) for b in betas)  # plain floats: optimizer state loads with weights_only

        self.members = nn.ModuleList(Member(arch, latent_dim, ngf, ndf, channels, resolution) for _ in range(k))
        self.g_taps = nn.ModuleDict({name: nn.Identity() for name in self.members[0].generator.stages})
        self.d_taps = nn.ModuleDict({name: nn.Identity() for name in self.members[0].discriminator.stages})
        self.partition = KGANPartition(
            k,
            channels,
            balanced=balanced,
            uniform_weights=independent,  # independent GANs: latents routed uniformly
            feature_space=feature_space,
            feature_size=feature_size,
            init_iters=init_iters,
            n_sweeps=n_sweeps,
            seed=partition_seed,
        )
        self.batches_seen = 0  # training batches so far (generator rounds: every n_critic-th)
        self._features: tuple[Tensor, Tensor, list[int]] | None = None  # cache of train_features()

    # -- generator contract ------------------------------------------------------------------------
    def route_latents(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``(member [n], z')``: quantile-bin routing of ``Phi(z[:, 0])`` (see module docstring)."""
        n = z.shape[0]
        if self.k == 1:
            return torch.zeros(n, dtype=torch.long, device=z.device), z
        u = torch.special.ndtr(z[:, 0].double())
        weights = self.partition.cell_weights.double().cpu()
        edges = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(weights, 0)])
        edges = (edges / edges[-1]).to(z.device)
        member = torch.bucketize(u, edges[1:-1], right=True).clamp_(0, self.k - 1)
        lo, hi = edges[member], edges[member + 1]
        inner = ((u - lo) / (hi - lo).clamp_min(1e-12)).clamp(1e-7, 1 - 1e-7)
        z2 = z.clone()
        z2[:, 0] = torch.special.ndtri(inner).to(z.dtype)
        return member, z2

    def route_images(self, x: Tensor) -> Tensor:
        """Cell (member) of each image: power cells of its features with the current sites/offsets."""
        return self.partition.assign(self.partition.features(x)).to(x.device)

    def generate(self, z: Tensor, member: int | None = None) -> Tensor:
        """Images in [-1, 1]; routed over members (deterministic in z) unless ``member`` is given."""
        if member is None:
            idx, z = self.route_latents(z)
        else:
            idx = torch.full((z.shape[0],), int(member), dtype=torch.long, device=z.device)
        return routed_forward([m.generator for m in self.members], self.g_taps, z, idx)

    def critic(self, x: Tensor, member: int | None = None) -> Tensor:
        """Raw critic scores ``[n]`` of the member owning each image's cell (or of ``member``)."""
        idx = (
            self.route_images(x)
            if member is None
            else torch.full((x.shape[0],), int(member), dtype=torch.long, device=x.device)
        )
        return routed_forward([m.discriminator for m in self.members], self.d_taps, x, idx).flatten()

    def generator_layers(self, member: int | None = None) -> dict[str, nn.Module]:
        if member is None:
            return dict(self.g_taps.items())
        return {f"m{member}.{n}": s for n, s in self.members[member].generator.stages.items()}

    def discriminator_layers(self, member: int | None = None) -> dict[str, nn.Module]:
        if member is None:
            return dict(self.d_taps.items())
        return {f"m{member}.{n}": s for n, s in self.members[member].discriminator.stages.items()}

    @property
    def n_members(self) -> int:
        return self.k

    def discriminator_input_conv(self) -> nn.Module:
        """Member 0's first critic convolution (weight-based probes look at member 0)."""
        return next(m for m in self.members[0].discriminator.modules() if isinstance(m, nn.Conv2d))

    def sefa_weight(self, member: int = 0) -> tuple[Tensor, str]:
        """First-layer weight of a member's generator (where z enters), for SeFa in z space."""
        first = next(iter(self.members[member].generator.stages.values()))
        layer = next(m for m in first.modules() if isinstance(m, (nn.Linear, nn.ConvTranspose2d)))
        return layer.weight.detach(), "z"

    def member_view(self, j: int) -> KGANMemberView:
        """Member ``j`` as a stand-alone :class:`GANModule` (shares this module's weights)."""
        return KGANMemberView(self, j)

    # -- partition ---------------------------------------------------------------------------------
    def train_features(self) -> tuple[Tensor, Tensor, list[int]]:
        """(features [n, d], cache rows [n], dataset positions) of the training split (cached)."""
        if self._features is not None:
            return self._features
        dm = getattr(self.trainer, "datamodule", None)
        feats, rows = [], []
        if dm is not None and hasattr(dm, "dataset"):
            ds = dm.dataset("train")
            for a in range(0, len(ds), FEATURE_CHUNK):
                b = ds.__getitems__(list(range(a, min(a + FEATURE_CHUNK, len(ds)))))
                feats.append(self.partition.features(b["image"]))
                rows.append(b["index"])
            positions = list(range(len(ds)))
        else:  # any loader whose batches carry "index"
            for b in self.trainer.train_dataloader:
                feats.append(self.partition.features(b["image"]))
                rows.append(b["index"])
            positions = []
        self._features = (torch.cat(feats), torch.cat(rows).long(), positions)
        return self._features

    def medoid_positions(self) -> list[int] | None:
        """Training-split dataset positions of the cell medoids; ``None`` if unknown (no features yet)."""
        if not self.partition.medoid_rows or self._features is None:
            return None
        _, rows, positions = self._features
        pos_of = {int(r): p for r, p in zip(rows.tolist(), positions)}
        wanted = [pos_of.get(r) for r in self.partition.medoid_rows]
        return None if any(p is None for p in wanted) else wanted

    # -- training ----------------------------------------------------------------------------------
    def configure_optimizers(self):
        """One Adam per net: the k generators' optimizers, then the k critics'."""
        nets = [m.generator for m in self.members] + [m.discriminator for m in self.members]
        return [torch.optim.Adam(net.parameters(), lr=self.hparams.lr, betas=self.hparams.betas) for net in nets]

    def on_train_epoch_start(self) -> None:
        epoch, part = self.current_epoch, self.partition
        if part.row_to_member is None or (epoch % self.hparams.repartition_every == 0 and part.epoch != epoch):
            features, rows, _ = self.train_features()
            part.update(features, rows, epoch)
        for j, s in enumerate(part.cell_sizes or []):
            self.log(f"kgan/cell_size/m{j}", float(s), on_step=False, on_epoch=True)
        for key, value in part.stats.items():
            self.log(f"kgan/{key}", value, on_step=False, on_epoch=True)

    def _critic_step(self, member: Member, real: Tensor, opt) -> dict[str, Tensor]:
        with torch.no_grad():
            fake = member.generator(self.sample_z(real.shape[0]))

        def critic_loss() -> tuple[Tensor, Tensor, Tensor]:  # (WGAN loss + lambda GP, GP, WGAN loss)
            real_s, fake_s = member.critic_scores(real).float(), member.critic_scores(fake).float()
            gp = losses.gradient_penalty(member.critic_scores, real, fake).mean()
            w_loss = losses.wgan_critic_loss(real_s, fake_s)
            return w_loss + self.hparams.gp_lambda * gp, gp, w_loss

        loss, gp, w_loss = self.optimizer_update(opt, critic_loss)
        return {"d_loss": loss, "gp": gp, "w_dist": -w_loss}

    def _generator_step(self, member: Member, n: int, opt) -> Tensor:
        return self.optimizer_update(
            opt, lambda: losses.wgan_generator_loss(member.critic_scores(member.generator(self.sample_z(n))).float())
        )

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        opt_g, opt_d = opts[: self.k], opts[self.k :]
        real = batch["image"]
        owner = None if self.hparams.independent else self.partition.members_of(batch["index"], real)
        g_round = self.batches_seen % self.hparams.n_critic == 0
        self.batches_seen += 1
        d_losses, g_losses = [], []
        for j, member in enumerate(self.members):
            rows = real if owner is None else real[owner == j]
            if rows.shape[0] == 0:
                continue  # no data of this cell in the batch: skip the member
            stats = self._critic_step(member, rows, opt_d[j])
            d_losses.append(stats["d_loss"])
            logs = {f"train/m{j}/{key}": v for key, v in stats.items()}
            logs[f"train/m{j}/batch_rows"] = float(rows.shape[0])
            if g_round:
                g_losses.append(self._generator_step(member, rows.shape[0], opt_g[j]))
                logs[f"train/m{j}/g_loss"] = g_losses[-1]
            self.log_dict(logs, on_step=True, on_epoch=True)
        if d_losses:
            self.log("train/d_loss", torch.stack(d_losses).mean(), on_step=True, on_epoch=True, prog_bar=True)
        if g_round:
            if g_losses:
                self.log("train/g_loss", torch.stack(g_losses).mean(), on_step=True, on_epoch=True, prog_bar=True)
            self.finish_generator_step()

    # -- hyperparameters other code reads -------------------------------------------------------------
    @property
    def k(self) -> int:
        """Ensemble size (``model.k``)."""
        return self.hparams.k

    # -- checkpoint --------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["kgan"] = {**self.partition.checkpoint_state(), "batches_seen": self.batches_seen}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("kgan", {})
        self.partition.load_checkpoint_state(state)
        self.batches_seen = int(state.get("batches_seen", 0))


class KGANMemberView(GANModule):
    """One k-GAN member behind the generator contract (weights shared with the ensemble)."""

    supported_resolutions = KGAN.supported_resolutions
    uses_double_backward = True

    def __init__(self, parent: KGAN, j: int) -> None:
        super().__init__(parent.latent_dim, parent.resolution, parent.channels, parent.n_fixed, parent.fixed_seed)
        if not 0 <= j < parent.k:
            raise ConfigError(f"member={j} does not exist; k-GAN has members 0..{parent.k - 1}")
        self.j = j
        self.member = parent.members[j]
        self._device = parent.device

    def generate(self, z: Tensor) -> Tensor:
        return self.member.generator(z)

    def critic(self, x: Tensor) -> Tensor:
        return self.member.critic_scores(x)

    def generator_layers(self) -> dict[str, nn.Module]:
        return {f"m{self.j}.{n}": s for n, s in self.member.generator.stages.items()}

    def discriminator_layers(self) -> dict[str, nn.Module]:
        return {f"m{self.j}.{n}": s for n, s in self.member.discriminator.stages.items()}


__all__ = ["KGAN", "KGANMemberView"]
