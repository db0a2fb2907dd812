"""Nearest training neighbours of generated samples (pixel L2 and discriminator-feature space).

:func:`nearest_neighbours` streams the reference set in chunks and keeps a running top-k, so the
memory is ``O(queries * chunk)`` whatever the size of the training set; it equals a brute-force
``torch.cdist(...).topk(largest=False)``. :func:`medoid` finds the sample with the smallest summed
distance to the others, also chunked.

The probe shows each generated image (fixed seeded z) next to its k nearest training images and
reports the distances with a baseline: the nearest-training distances of held-out (validation)
real images. ``gen_over_val`` well below 1 hints at memorised training images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor

from gan_interp.capture import last_feature_layer, run_capturing
from gan_interp.probes import figures
from gan_interp.probes.activations import pooled
from gan_interp.probes.context import ProbeContext
from gan_interp.probes.latents import fixed_z
from gan_interp.probes.registry import register_probe


def chunks_of(refs: Tensor, chunk_size: int) -> Iterator[Tensor]:
    """Consecutive row chunks of a tensor."""
    for i in range(0, refs.shape[0], chunk_size):
        yield refs[i : i + chunk_size]


def nearest_neighbours(
    queries: Tensor, refs: Tensor | Iterable[Tensor], k: int = 1, chunk_size: int = 512
) -> tuple[Tensor, Tensor]:
    """``(distances [q, k], indices [q, k])`` of the ``k`` nearest rows of ``refs`` (L2), chunked.

    ``refs`` is a tensor ``[m, ...]`` or an iterable of consecutive chunks (rows are flattened).
    """
    q = queries.reshape(queries.shape[0], -1).float()
    stream = chunks_of(refs, chunk_size) if isinstance(refs, Tensor) else refs
    best_d = torch.full((q.shape[0], 0), float("inf"), device=q.device)
    best_i = torch.zeros((q.shape[0], 0), dtype=torch.long, device=q.device)
    offset = 0
    for chunk in stream:
        c = chunk.reshape(chunk.shape[0], -1).float().to(q.device)
        d = torch.cdist(q, c)
        idx = torch.arange(offset, offset + c.shape[0], device=q.device).expand(q.shape[0], -1)
        all_d, all_i = torch.cat([best_d, d], 1), torch.cat([best_i, idx], 1)
        kk = min(k, all_d.shape[1])
        best_d, pos = all_d.topk(kk, dim=1, largest=False)
        best_i = all_i.gather(1, pos)
        offset += c.shape[0]
    return best_d, best_i


def medoid(x: Tensor, chunk_size: int = 256) -> int:
    """Index of the row of ``x [n, ...]`` with the smallest summed L2 distance to all rows."""
    flat = x.reshape(x.shape[0], -1).float()
    sums = torch.cat([torch.cdist(c, flat).sum(1) for c in chunks_of(flat, chunk_size)])
    return int(sums.argmin())


def _train_chunks(
    datamodule, n_refs: int, chunk_size: int, transform: Callable[[Tensor], Tensor] | None
) -> Iterator[Tensor]:
    ds = datamodule.dataset("train")
    for s in range(0, n_refs, chunk_size):
        imgs = ds.__getitems__(list(range(s, min(s + chunk_size, n_refs))))["image"]
        yield imgs if transform is None else transform(imgs)


def feature_fn(model, layer: str | None, pool: int = 4) -> tuple[str, Callable[[Tensor], Tensor]]:
    """Discriminator features: the output of ``layer`` (default the last D feature map), pooled to ``pool`` x
    ``pool``."""
    layers = model.discriminator_layers()
    name = layer or last_feature_layer(model)
    if name not in layers:
        raise ValueError(
            f"neighbours feature_layer {name!r} is not a discriminator layer; choose from {', '.join(layers)}"
        )

    def features(x: Tensor) -> Tensor:
        with torch.no_grad():
            act = run_capturing({name: layers[name]}, lambda: model.critic(x.to(model.device)))[name]
        return pooled(act, pool).cpu()

    return name, features


@register_probe("neighbours", requires=("datamodule",))
def neighbours_probe(
    ctx: ProbeContext,
    n: int = 8,  # generated queries (fixed seeded z)
    k: int = 4,  # neighbours shown per query
    spaces: list[str] = ("pixel",),  # pixel and/or feature (discriminator layer features)
    feature_layer: str | None = None,  # D layer for space=feature (None = the last feature map)
    max_refs: int | None = None,  # training images searched (None = all)
    chunk_size: int = 256,  # reference images per chunk (bounds memory)
    n_baseline: int = 16,  # validation images for the real-to-train baseline distance
) -> dict:
    """Generated samples next to their nearest training images, with a held-out baseline."""
    model, datamodule, out = ctx.model, ctx.datamodule, ctx.out
    ds = datamodule.dataset("train")
    n_refs = len(ds) if max_refs is None else min(int(max_refs), len(ds))
    fake = model.generate(fixed_z(model, n, ctx.seed)).detach().cpu()
    val = datamodule.images("val", n_baseline)
    summary: dict = {"n": n, "k": k, "n_refs": n_refs}
    for space in spaces:
        if space == "pixel":
            transform, queries, base_q, label = None, fake, val, "pixel L2"
        elif space == "feature":
            name, fn = feature_fn(model, feature_layer)
            transform, queries, base_q, label = fn, fn(fake), fn(val) if val.numel() else val, f"D {name} features"
        else:
            raise ValueError(f"neighbours space {space!r} is unknown; use pixel or feature")
        dist, idx = nearest_neighbours(queries, _train_chunks(datamodule, n_refs, chunk_size, transform), k, chunk_size)
        kk = idx.shape[1]
        neigh = ds.__getitems__(idx.flatten().tolist())["image"].reshape(n, kk, *fake.shape[1:])
        rows = torch.cat([fake.unsqueeze(1), neigh], 1).flatten(0, 1)
        out.image(
            space, figures.image_grid(rows, nrow=kk + 1), caption=f"{label}: generated | {kk} nearest training images"
        )
        info = {
            "distances": dist.tolist(),
            "train_rows": ds.indices[idx.numpy()].tolist(),
            "mean_nn_distance": dist[:, 0].mean().item(),
        }
        if base_q.numel():
            bd, _ = nearest_neighbours(base_q, _train_chunks(datamodule, n_refs, chunk_size, transform), 1, chunk_size)
            info["val_mean_nn_distance"] = bd[:, 0].mean().item()
            info["gen_over_val"] = info["mean_nn_distance"] / max(info["val_mean_nn_distance"], 1e-12)
        out.table(
            f"{space}_distances",
            ["query", "rank", "train_row", "distance"],
            [[i, r, info["train_rows"][i][r], info["distances"][i][r]] for i in range(n) for r in range(kk)],
        )
        summary[space] = info
    out.json("summary", summary)
    return summary
