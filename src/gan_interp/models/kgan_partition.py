"""The k-GAN partition state: power cells of the training set in a feature space, as one module.

:class:`KGANPartition` holds everything k-GAN knows about its data cells (the pure OT / k-means
maths is in :mod:`gan_interp.models.partition`):

* buffers (in ``state_dict``): ``sites [k, d]``, ``offsets [k]`` (float64 power-cell offsets),
  ``cell_weights [k]`` (the latent routing bins) and ``ready`` (a partition exists);
* Python state (:meth:`checkpoint_state` / :meth:`load_checkpoint_state`, stored by the model in
  ``checkpoint["kgan"]``): ``row_to_member`` (cell of every training cache row, -1 = none),
  ``medoid_rows`` (cache row of every cell's medoid, -1 = empty cell), ``cell_sizes``, ``stats``
  (``ot_cost``, ``reseeded``) and ``epoch`` (the training epoch it was last computed for).

Everything exists from ``__init__`` on; before the first :meth:`update` ``ready`` is false,
``row_to_member`` / ``cell_sizes`` / ``epoch`` are ``None`` and the lists / dicts are empty.

:meth:`update` builds the partition on the first call (k-means++ sites seeded by ``seed``, then
``init_iters`` rounds of OT assignment + centroid sites). Later calls move the sites (the paper's
point masses) and re-solve the exact balanced OT, warm-started from the last offsets:

* ``sites_from="generated"`` (co-evolving, the k-GAN paper's alternation): the caller passes the
  sites, the mean features of each member's *generated* samples (see :mod:`gan_interp.models.kgan`),
  so the cells follow the generators;
* ``sites_from="data"`` (data-only, the ablation): one Lloyd round, sites <- centroids of the
  current cells of the data; the generators never influence the cells.

Every update records in ``stats``: ``ot_cost`` (mean squared feature distance of an image to its
cell's site), ``rows_changed`` / ``rows_changed_fraction`` (training images whose cell changed
since the previous update; 0 at the first build), ``site_shift`` (mean over cells of the L2 distance
a site moved, feature units; per cell ``site_shift/m{j}``; 0 at the first build) and ``reseeded``.
:meth:`assign` puts features into power cells; :meth:`members_of` looks batch rows up;
:meth:`cells_of_rows` gives the cells of cache rows (the per-cell batch sampler's input).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gan_interp.errors import ConfigError
from gan_interp.models import partition as P

SITES_FROM = ("generated", "data")  # where the sites (point masses) come from after the first build


class KGANPartition(nn.Module):
    """Power-cell partition of the training set (sites, offsets, cells) with its update rule."""

    def __init__(
        self,
        k: int,  # number of cells (= k-GAN members)
        channels: int,  # image channels (feature size of the 'pixels' space)
        balanced: bool = True,  # False: plain Voronoi cells (empty cells re-seeded)
        uniform_weights: bool = False,  # True: latent routing bins 1/k whatever the cell sizes (independent GANs)
        feature_space: str = "pixels",  # 'pixels' (RGB) or 'gray', see partition.pixel_features
        feature_size: int = 8,  # side of the area-downsampled feature image
        init_iters: int = 5,  # Lloyd rounds of the first build
        n_sweeps: int = 20,  # dual coordinate-ascent sweeps per OT solve (then exact repair)
        seed: int = 0,  # seed of the k-means++ site initialisation
        sites_from: str = "generated",  # 'generated' (co-evolving with the members) or 'data' (data-only)
    ) -> None:
        super().__init__()
        if sites_from not in SITES_FROM:
            raise ConfigError(f"model.sites_from={sites_from!r} is unknown; use one of {', '.join(SITES_FROM)}")
        self.sites_from = sites_from
        self.k, self.balanced, self.uniform_weights = k, balanced, uniform_weights
        self.feature_space, self.feature_size = feature_space, feature_size
        self.init_iters, self.n_sweeps, self.seed = init_iters, n_sweeps, seed
        feature_dim = (1 if feature_space == "gray" else channels) * feature_size**2
        self.register_buffer("sites", torch.zeros(k, feature_dim))  # [k, d] cell sites (centroids)
        self.register_buffer("offsets", torch.zeros(k, dtype=torch.float64))  # [k] power-cell offsets
        self.register_buffer("cell_weights", torch.full((k,), 1.0 / k))  # [k] latent routing bins
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))  # a partition has been computed
        self.row_to_member: Tensor | None = None  # [max_row + 1] cell of each training cache row (-1: none)
        self.medoid_rows: list[int] = []  # cache row of each cell's medoid (-1: empty cell)
        self.cell_sizes: list[int] | None = None  # training rows per cell
        self.stats: dict[str, float] = {}  # the last update's ot_cost, rows_changed(_fraction), site_shift, ...
        self.epoch: int | None = None  # training epoch the partition was last computed for

    # -- features and cells ------------------------------------------------------------------------
    def features(self, images: Tensor) -> Tensor:
        """``[n, d]`` OT features of images (area-downsampled pixels or luma, no gradient)."""
        return P.pixel_features(images.detach(), self.feature_size, self.feature_space)

    def assign(self, features: Tensor) -> Tensor:
        """Power cell of every feature row with the current sites / offsets (all 0 for ``k=1``)."""
        if self.k == 1:
            return torch.zeros(features.shape[0], dtype=torch.long, device=features.device)
        return P.power_assign(P.squared_distances(features, self.sites), self.offsets.double())

    def members_of(self, rows: Tensor, images: Tensor) -> Tensor:
        """Cell of each batch row (on ``images.device``): the stored one, power cells for unknown rows."""
        member = torch.full((rows.shape[0],), -1, dtype=torch.long)
        if self.row_to_member is not None:
            r = rows.cpu()
            known = r < self.row_to_member.shape[0]
            member[known] = self.row_to_member[r[known]]
        unknown = member < 0
        if bool(unknown.any()):
            member[unknown] = self.assign(self.features(images[unknown.to(images.device)])).cpu()
        return member.to(images.device)

    def cells_of_rows(self, rows: Tensor) -> Tensor:
        """Cell of each training cache row (``-1`` for rows the partition does not hold)."""
        if self.row_to_member is None:
            raise RuntimeError("the k-GAN partition has not been computed yet (it is built at the first epoch start)")
        rows = torch.as_tensor(rows, dtype=torch.long)
        out = torch.full(rows.shape, -1, dtype=torch.long)
        known = rows < self.row_to_member.shape[0]
        out[known] = self.row_to_member[rows[known]]
        return out

    @property
    def moves_with_generators(self) -> bool:
        """Whether the next :meth:`update` takes its sites from the members' samples (co-evolving, built)."""
        return self.sites_from == "generated" and bool(self.ready)

    # -- update ------------------------------------------------------------------------------------
    @torch.no_grad()
    def update(
        self,
        features: Tensor,  # [n, d] OT features of the training images
        rows: Tensor,  # [n] their cache rows
        epoch: int | None = None,  # training epoch (recorded)
        sites: Tensor | None = None,  # [k, d] new sites (co-evolving: member sample means); None: data rule
    ) -> P.Partition:
        """Build (first call) or update the partition of ``features`` (cache ``rows``); see the module doc."""
        previous_sites = self.sites.detach().cpu().clone() if bool(self.ready) else None
        previous_cells = self.cells_of_rows(rows) if self.row_to_member is not None else None
        if not bool(self.ready):
            g = torch.Generator().manual_seed(self.seed)
            start, offsets, rounds = P.kmeans_pp_sites(features, self.k, g), None, self.init_iters
        elif sites is not None:  # co-evolving: the members' point masses, then the exact OT
            start, offsets, rounds = sites.detach().cpu().to(features.dtype), self.offsets.detach().cpu(), 0
        else:
            start, offsets, rounds = self.sites.detach().cpu(), self.offsets.detach().cpu(), 1
            if previous_cells is not None and not bool((previous_cells < 0).any()):  # Lloyd: sites <- centroids
                start, rounds = P.cell_centroids(features, previous_cells, self.k, previous=start), 0
        for _ in range(rounds):
            part, start, _ = P.update_partition(features, start, offsets, self.balanced, self.n_sweeps)
            start, offsets = P.cell_centroids(features, part.assignment, self.k, previous=start), part.offsets
        part, new_sites, reseeded = P.update_partition(features, start, offsets, self.balanced, self.n_sweeps)
        self._store(part, new_sites, features, rows)
        self.stats = {
            "ot_cost": part.cost / max(1, len(rows)),  # mean squared feature distance to the own site
            "reseeded": float(len(reseeded)),  # empty cells re-seeded (Voronoi mode only)
            **_movement(previous_cells, part.assignment, previous_sites, new_sites),
        }
        self.epoch = epoch
        return part

    def _store(self, part: P.Partition, sites: Tensor, features: Tensor, rows: Tensor) -> None:
        self.sites.copy_(sites.to(self.sites))
        self.offsets.copy_(part.offsets.to(self.offsets))
        n = max(1, int(part.counts.sum()))
        weights = torch.full((self.k,), 1.0 / self.k) if self.uniform_weights else part.counts.float() / n
        self.cell_weights.copy_(weights.to(self.cell_weights))
        self.ready.fill_(True)
        lookup = torch.full((int(rows.max()) + 1,), -1, dtype=torch.long)
        lookup[rows] = part.assignment
        self.row_to_member = lookup
        medoids = P.cell_medoids(features, part.assignment, self.k)
        self.medoid_rows = [int(rows[i]) if i >= 0 else -1 for i in medoids.tolist()]
        self.cell_sizes = part.counts.tolist()

    # -- reports and checkpoints -------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """JSON-ready cells: sizes, routing weights, offsets, medoid rows and the last update's stats."""
        return {
            "sites_from": self.sites_from,
            "cell_sizes": self.cell_sizes,
            "cell_weights": self.cell_weights.tolist(),
            "offsets": self.offsets.tolist(),
            "medoid_rows": self.medoid_rows,
            **self.stats,
        }

    def checkpoint_state(self) -> dict[str, Any]:
        """The Python-side state (the buffers are in ``state_dict``); plain types, loadable with weights_only."""
        return {
            "row_to_member": self.row_to_member,
            "medoid_rows": list(self.medoid_rows),
            "cell_sizes": self.cell_sizes,
            "stats": dict(self.stats),
            "partition_epoch": self.epoch,
        }

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`checkpoint_state` (missing keys: the fresh-module values)."""
        self.row_to_member = state.get("row_to_member")
        self.medoid_rows = list(state.get("medoid_rows", []))
        sizes = state.get("cell_sizes")
        self.cell_sizes = None if sizes is None else [int(s) for s in sizes]
        self.stats = {str(key): float(v) for key, v in state.get("stats", {}).items()}
        epoch = state.get("partition_epoch")
        self.epoch = None if epoch is None else int(epoch)


def _movement(
    before: Tensor | None, after: Tensor, sites_before: Tensor | None, sites_after: Tensor
) -> dict[str, float]:
    """``rows_changed`` (count, fraction) between two assignments and ``site_shift`` (mean, per cell)."""
    k = sites_after.shape[0]
    if before is None or sites_before is None:
        return {"rows_changed": 0.0, "rows_changed_fraction": 0.0, "site_shift": 0.0} | {
            f"site_shift/m{j}": 0.0 for j in range(k)
        }
    known = before >= 0
    changed = int((before[known] != after[known]).sum())
    shift = (sites_after.double().cpu() - sites_before.double()).norm(dim=1)
    return {
        "rows_changed": float(changed),
        "rows_changed_fraction": changed / max(1, int(known.sum())),
        "site_shift": float(shift.mean()),
    } | {f"site_shift/m{j}": float(v) for j, v in enumerate(shift.tolist())}


__all__ = ["SITES_FROM", "KGANPartition"]
