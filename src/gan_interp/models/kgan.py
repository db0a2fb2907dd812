"""k-GAN (Ambrogioni, Güçlü & van Gerven 2019): an ensemble of k WGAN-GP pairs, one per data cell.

Training data are split into k cells by a balanced power-cell partition (semi-discrete optimal
transport, :mod:`gan_interp.models.partition`) in a feature space (default: 8x8 area-downsampled
pixels). Sites are the cells' centroids (k-means/Lloyd update); offsets keep every cell at 1/k of
the training set exactly (sizes differ by at most one image). The partition is computed at the
start of epoch 0 (k-means++ seeding + ``init_iters`` Lloyd rounds) and recomputed every
``repartition_every`` epochs (one Lloyd round, warm-started offsets). Empty cells cannot occur in a
balanced partition; with ``balanced=false`` (plain Voronoi cells) they are re-seeded.

Each member j is a WGAN-GP pair (lambda 10, Adam(1e-4, betas (0, 0.9))) trained on the batch rows
of its own cell only; a member without rows in a batch skips that batch. Critic steps happen every
batch, generator steps on every ``n_critic``-th batch (batches 0, n_critic, 2 n_critic, ... of
the run), i.e. ``n_critic`` critic updates per generator update; ``g_steps`` counts these rounds.

Baselines (``-m model.k=1,3 model.independent=false,true``): ``k=1`` is one WGAN-GP on all data;
``independent=true`` trains k members each on *all* data (the partition is still computed and
logged, and routes ``critic(x)``, but does not select training data).

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

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.utils import make_grid, save_image

from gan_interp.errors import ConfigError
from gan_interp.logging_utils import log_image
from gan_interp.models import losses
from gan_interp.models import partition as P
from gan_interp.models.base import GANModule
from gan_interp.models.kgan_nets import Member, routed_forward

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
        n_log_samples: int = 16,  # samples per member in the epoch-end grids
        log_every_n_epochs: int = 1,  # medoid / sample grids every N epochs (and the last)
        n_fixed: int = 64,
        fixed_seed: int = 1234,
        name: str = "kgan",
    ) -> None:
        super().__init__(latent_dim, resolution, channels, n_fixed, fixed_seed)
        if int(k) < 1:
            raise ConfigError(f"model.k={k} must be >= 1")
        if int(n_critic) < 1:
            raise ConfigError(f"model.n_critic={n_critic} must be >= 1")
        if int(repartition_every) < 1:
            raise ConfigError(f"model.repartition_every={repartition_every} must be >= 1")
        if feature_space not in P.FEATURE_SPACES:
            raise ConfigError(f"model.feature_space={feature_space!r} is unknown; use one of {', '.join(P.FEATURE_SPACES)}")
        self.save_hyperparameters()
        self.k, self.n_critic, self.gp_lambda = int(k), int(n_critic), float(gp_lambda)
        self.lr, self.betas = float(lr), tuple(float(b) for b in betas)
        self.independent, self.balanced = bool(independent), bool(balanced)
        self.repartition_every, self.init_iters, self.n_sweeps = int(repartition_every), int(init_iters), int(n_sweeps)
        self.feature_space, self.feature_size, self.partition_seed = feature_space, int(feature_size), int(partition_seed)
        self.n_log_samples, self.log_every_n_epochs = int(n_log_samples), max(1, int(log_every_n_epochs))

        self.members = nn.ModuleList(Member(arch, latent_dim, ngf, ndf, channels, resolution) for _ in range(self.k))
        self.g_taps = nn.ModuleDict({name: nn.Identity() for name in self.members[0].generator.stages})
        self.d_taps = nn.ModuleDict({name: nn.Identity() for name in self.members[0].discriminator.stages})

        feat_dim = (1 if feature_space == "gray" else channels) * self.feature_size**2
        self.register_buffer("sites", torch.zeros(self.k, feat_dim))  # [k, d] cell sites (centroids)
        self.register_buffer("offsets", torch.zeros(self.k, dtype=torch.float64))  # [k] power-cell offsets
        self.register_buffer("cell_weights", torch.full((self.k,), 1.0 / self.k))  # [k] latent routing bins
        self.register_buffer("partition_ready", torch.zeros((), dtype=torch.bool))
        self.row_to_member: Tensor | None = None  # [max_row + 1] member of each training row (-1: none)
        self.medoid_rows: list[int] = []
        self.batches_seen = 0
        self._features: tuple[Tensor, Tensor, list[int]] | None = None  # (features, rows, positions)

    # -- generator contract ------------------------------------------------------------------------
    def route_latents(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``(member [n], z')``: quantile-bin routing of ``Phi(z[:, 0])`` (see module docstring)."""
        n = z.shape[0]
        if self.k == 1:
            return torch.zeros(n, dtype=torch.long, device=z.device), z
        u = torch.special.ndtr(z[:, 0].double())
        edges = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(self.cell_weights.double().cpu(), 0)])
        edges = (edges / edges[-1]).to(z.device)
        member = torch.bucketize(u, edges[1:-1], right=True).clamp_(0, self.k - 1)
        lo, hi = edges[member], edges[member + 1]
        inner = ((u - lo) / (hi - lo).clamp_min(1e-12)).clamp(1e-7, 1 - 1e-7)
        z2 = z.clone()
        z2[:, 0] = torch.special.ndtri(inner).to(z.dtype)
        return member, z2

    def route_images(self, x: Tensor) -> Tensor:
        """Cell (member) of each image: power cells of its features with the current sites/offsets."""
        if self.k == 1:
            return torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        feats = P.pixel_features(x.detach(), self.feature_size, self.feature_space)
        return P.power_assign(P.squared_distances(feats, self.sites), self.offsets.double()).to(x.device)

    def generate(self, z: Tensor, member: int | None = None) -> Tensor:
        """Images in [-1, 1]; routed over members (deterministic in z) unless ``member`` is given."""
        if member is None:
            idx, z = self.route_latents(z)
        else:
            idx = torch.full((z.shape[0],), int(member), dtype=torch.long, device=z.device)
        return routed_forward([m.generator for m in self.members], self.g_taps, z, idx)

    def critic(self, x: Tensor, member: int | None = None) -> Tensor:
        """Raw critic scores ``[n]`` of the member owning each image's cell (or of ``member``)."""
        idx = self.route_images(x) if member is None else torch.full((x.shape[0],), int(member), dtype=torch.long, device=x.device)
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

    def member_view(self, j: int) -> "KGANMemberView":
        """Member ``j`` as a stand-alone :class:`GANModule` (shares this module's weights)."""
        return KGANMemberView(self, j)

    # -- partition ---------------------------------------------------------------------------------
    def _train_features(self) -> tuple[Tensor, Tensor, list[int]]:
        """(features [n, d], cache rows [n], dataset positions) of the training split (cached)."""
        if self._features is not None:
            return self._features
        dm = getattr(self.trainer, "datamodule", None)
        feats, rows = [], []
        if dm is not None and hasattr(dm, "dataset"):
            ds = dm.dataset("train")
            for a in range(0, len(ds), FEATURE_CHUNK):
                b = ds.__getitems__(list(range(a, min(a + FEATURE_CHUNK, len(ds)))))
                feats.append(P.pixel_features(b["image"], self.feature_size, self.feature_space))
                rows.append(b["index"])
            positions = list(range(len(ds)))
        else:  # any loader whose batches carry "index"
            for b in self.trainer.train_dataloader:
                feats.append(P.pixel_features(b["image"], self.feature_size, self.feature_space))
                rows.append(b["index"])
            positions = []
        self._features = (torch.cat(feats), torch.cat(rows).long(), positions)
        return self._features

    @torch.no_grad()
    def recompute_partition(self) -> P.Partition:
        """Build (first call) or update (Lloyd round + OT) the partition of the training set."""
        feats, rows, _ = self._train_features()
        if not bool(self.partition_ready):
            g = torch.Generator().manual_seed(self.partition_seed)
            sites, offsets, rounds = P.kmeans_pp_sites(feats, self.k, g), None, self.init_iters
            assignment = None
        else:
            sites, offsets, rounds = self.sites.detach().cpu(), self.offsets.detach().cpu(), 1
            assignment = self.row_to_member[rows].cpu() if self.row_to_member is not None else None
            if assignment is not None and bool((assignment < 0).any()):
                assignment = None
            if assignment is not None:  # Lloyd: sites <- centroids of the current cells
                sites = P.cell_centroids(feats, assignment, self.k, previous=sites)
                rounds = 0
        for _ in range(rounds):
            part, sites, _ = P.update_partition(feats, sites, offsets, self.balanced, self.n_sweeps)
            sites, offsets = P.cell_centroids(feats, part.assignment, self.k, previous=sites), part.offsets
        part, sites, reseeded = P.update_partition(feats, sites, offsets, self.balanced, self.n_sweeps)
        self._store_partition(part, sites, feats, rows)
        self.partition_stats = {
            "ot_cost": part.cost / max(1, len(rows)),  # mean squared feature distance to the own site
            "reseeded": float(len(reseeded)),  # empty cells re-seeded (Voronoi mode only)
        }
        return part

    def _store_partition(self, part: P.Partition, sites: Tensor, feats: Tensor, rows: Tensor) -> None:
        self.sites.copy_(sites.to(self.sites))
        self.offsets.copy_(part.offsets.to(self.offsets))
        n = max(1, int(part.counts.sum()))
        weights = torch.full((self.k,), 1.0 / self.k) if self.independent else part.counts.float() / n
        self.cell_weights.copy_(weights.to(self.cell_weights))
        self.partition_ready.fill_(True)
        lookup = torch.full((int(rows.max()) + 1,), -1, dtype=torch.long)
        lookup[rows] = part.assignment
        self.row_to_member = lookup
        med = P.cell_medoids(feats, part.assignment, self.k)
        self.medoid_rows = [int(rows[i]) if i >= 0 else -1 for i in med.tolist()]
        self.cell_sizes = part.counts.tolist()

    def members_of(self, rows: Tensor, images: Tensor) -> Tensor:
        """Member of each batch row: the stored partition, power cells for rows it does not know."""
        member = torch.full((rows.shape[0],), -1, dtype=torch.long)
        if self.row_to_member is not None:
            r = rows.cpu()
            known = r < self.row_to_member.shape[0]
            member[known] = self.row_to_member[r[known]]
        unknown = member < 0
        if bool(unknown.any()):
            member[unknown] = self.route_images(images[unknown.to(images.device)]).cpu()
        return member.to(images.device)

    # -- training ----------------------------------------------------------------------------------
    def configure_optimizers(self):
        make = lambda p: torch.optim.Adam(p, lr=self.lr, betas=self.betas)  # noqa: E731
        return [make(m.generator.parameters()) for m in self.members] + [make(m.discriminator.parameters()) for m in self.members]

    def on_train_epoch_start(self) -> None:
        epoch = self.current_epoch
        if self.row_to_member is None or (epoch % self.repartition_every == 0 and getattr(self, "_partition_epoch", None) != epoch):
            self.recompute_partition()
            self._partition_epoch = epoch
        sizes = getattr(self, "cell_sizes", None)
        if sizes is None and self.row_to_member is not None:
            sizes = torch.bincount(self.row_to_member[self.row_to_member >= 0], minlength=self.k).tolist()
        for j, s in enumerate(sizes or []):
            self.log(f"kgan/cell_size/m{j}", float(s), on_step=False, on_epoch=True)
        for key, value in getattr(self, "partition_stats", {}).items():
            self.log(f"kgan/{key}", value, on_step=False, on_epoch=True)

    def _critic_step(self, member: Member, real: Tensor, opt) -> dict[str, Tensor]:
        with torch.no_grad():
            fake = member.generator(self.sample_z(real.shape[0]))
        self.toggle_optimizer(opt)
        real_s, fake_s = member.critic_scores(real).float(), member.critic_scores(fake).float()
        gp = losses.gradient_penalty(member.critic_scores, real, fake).mean()
        w_loss = losses.wgan_critic_loss(real_s, fake_s)
        loss = w_loss + self.gp_lambda * gp
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()
        self.untoggle_optimizer(opt)
        return {"d_loss": loss.detach(), "gp": gp.detach(), "w_dist": -w_loss.detach()}

    def _generator_step(self, member: Member, n: int, opt) -> Tensor:
        self.toggle_optimizer(opt)
        g_loss = losses.wgan_generator_loss(member.critic_scores(member.generator(self.sample_z(n))).float())
        opt.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt.step()
        self.untoggle_optimizer(opt)
        return g_loss.detach()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        opt_g, opt_d = opts[: self.k], opts[self.k :]
        real = batch["image"]
        owner = None if self.independent else self.members_of(batch["index"], real)
        g_round = self.batches_seen % self.n_critic == 0
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

    # -- epoch-end images --------------------------------------------------------------------------
    def on_train_epoch_end(self) -> None:
        epoch, trainer = self.current_epoch, self.trainer
        last = trainer.max_epochs is not None and epoch + 1 == trainer.max_epochs
        if (epoch + 1) % self.log_every_n_epochs and not last:
            return
        if trainer.global_rank != 0:
            return
        self.write_epoch_images(epoch)

    @torch.no_grad()
    def write_epoch_images(self, epoch: int) -> Path:
        """Medoid of every cell + samples of every member: PNGs in ``<run>/kgan/epoch_XXX/`` and loggers."""
        from gan_interp.callbacks.sample_grid import run_dir_of

        out = run_dir_of(self.trainer) / "kgan" / f"epoch_{epoch:03d}"
        out.mkdir(parents=True, exist_ok=True)
        step = self.trainer.global_step
        medoids = self._medoid_images()
        if medoids is not None:
            grid = make_grid(medoids, nrow=self.k, normalize=True, value_range=(-1, 1), padding=2)
            save_image(grid, out / "medoids.png")
            log_image(self.trainer.loggers, "kgan/medoids", grid, step=step, caption=f"epoch {epoch}: cells 0..{self.k - 1}")
        was_training = self.training
        self.eval()
        try:
            z = self.fixed_latents(self.n_log_samples)
            for j in range(self.k):
                imgs = self.generate(z, member=j).float().cpu()
                grid = make_grid(imgs, nrow=max(1, int(self.n_log_samples**0.5)), normalize=True, value_range=(-1, 1))
                save_image(grid, out / f"samples_m{j}.png")
                log_image(self.trainer.loggers, f"kgan/samples/m{j}", grid, step=step, caption=f"epoch {epoch}")
        finally:
            self.train(was_training)
        info: dict[str, Any] = {
            "epoch": epoch,
            "k": self.k,
            "independent": self.independent,
            "cell_sizes": getattr(self, "cell_sizes", None),
            "cell_weights": self.cell_weights.tolist(),
            "offsets": self.offsets.tolist(),
            "medoid_rows": self.medoid_rows,
            **getattr(self, "partition_stats", {}),
        }
        (out / "partition.json").write_text(json.dumps(info, indent=1))
        return out

    def _medoid_images(self) -> Tensor | None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None or not hasattr(dm, "dataset") or not self.medoid_rows or self._features is None:
            return None
        _, rows, positions = self._features
        pos_of = {int(r): p for r, p in zip(rows.tolist(), positions)}
        wanted = [pos_of.get(r) for r in self.medoid_rows]
        if any(p is None for p in wanted):
            return None
        return dm.dataset("train").__getitems__(wanted)["image"]

    # -- checkpoint --------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["kgan"] = {
            "row_to_member": self.row_to_member,
            "medoid_rows": list(self.medoid_rows),
            "batches_seen": self.batches_seen,
            "partition_epoch": getattr(self, "_partition_epoch", None),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("kgan", {})
        self.row_to_member = state.get("row_to_member")
        self.medoid_rows = list(state.get("medoid_rows", []))
        self.batches_seen = int(state.get("batches_seen", 0))
        if state.get("partition_epoch") is not None:
            self._partition_epoch = int(state["partition_epoch"])


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
