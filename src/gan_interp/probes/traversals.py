"""Latent traversals: one dimension at a time, lerp/slerp, and "freeze one dimension, resample the rest".

Pure functions on latent tensors (each changes only what it says):

* :func:`traverse_dim` - copies of ``z0`` where only coordinate ``dim`` takes each value;
* :func:`freeze_and_resample` - fresh latents whose coordinate ``dim`` is frozen (k-GAN thesis,
  section 2.2.2: fix one dimension, sample the others, look at what stays the same);
* :func:`lerp` / :func:`slerp` - linear and spherical interpolation between two latents;
* :func:`per_layer_mix` - StyleGAN ``ws`` where only one layer moves from ``w0`` towards ``w1``.

The probe renders z traversals, interpolations and freeze grids for the fixed seeded z, and for
models with a style space (:class:`~gan_interp.models.base.StyleSpace`) also w traversals and
per-layer mixing. On an ensemble (k-GAN) every traversal and interpolation row is made by one
member, the one its start latent routes to (``member`` in the summary for the z traversals), so a
row shows one generator's response to the latent and never a switch of members; freeze rows are
fresh samples of the mixture (every row alike, the unfrozen one included). ``per_member: true``
runs the whole probe on each member as well.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gan_interp.models.base import has_style_space
from gan_interp.probes import figures
from gan_interp.probes.context import ProbeContext
from gan_interp.probes.latents import fixed_z, pinned_generate, pinned_members, seeded
from gan_interp.probes.registry import register_probe


def traverse_dim(z0: Tensor, dim: int, values: Tensor) -> Tensor:
    """``[m, d]``: row ``i`` is ``z0`` with coordinate ``dim`` set to ``values[i]``."""
    z = z0.reshape(1, -1).repeat(values.numel(), 1)
    z[:, dim] = values.to(z)
    return z


def freeze_and_resample(
    z0: Tensor, dim: int, n: int, generator: torch.Generator | None = None, value: float | None = None
) -> Tensor:
    """``[n, d]`` standard-normal latents with coordinate ``dim`` frozen at ``value`` (default ``z0[dim]``)."""
    z = torch.randn(n, z0.numel(), generator=generator).to(z0)
    z[:, dim] = z0.reshape(-1)[dim] if value is None else value
    return z


def lerp(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    """``[m, d]`` linear interpolation ``(1 - t) z0 + t z1``."""
    t = t.to(z0).reshape(-1, 1)
    return (1 - t) * z0.reshape(1, -1) + t * z1.reshape(1, -1)


def slerp(z0: Tensor, z1: Tensor, t: Tensor, eps: float = 1e-7) -> Tensor:
    """``[m, d]`` spherical interpolation (Shoemake 1985) from ``z0`` (t=0) to ``z1`` (t=1).

    ``(sin((1-t) w) z0 + sin(t w) z1) / sin(w)`` with the angle ``w`` between the endpoints taken as
    ``2 atan2(|u - v|, |u + v|)`` of their unit vectors ``u, v`` in float64: accurate at every angle,
    including nearly parallel and nearly antipodal endpoints, where ``arccos`` of the cosine loses
    most of its digits. The result has ``z0``'s dtype. For (anti-)parallel endpoints (``w`` within
    ``eps`` of 0 or pi) or a zero endpoint the great circle is undefined and the result is
    :func:`lerp`: ``slerp(z, z, t) = z`` and ``slerp(z, -z, t) = (1 - 2t) z``.
    """
    a, b = z0.reshape(-1).double(), z1.reshape(-1).double()
    na, nb = a.norm(), b.norm()
    if float(na) == 0.0 or float(nb) == 0.0:
        return lerp(z0, z1, t)
    u, v = a / na, b / nb
    omega = 2.0 * torch.atan2((u - v).norm(), (u + v).norm())
    if float(omega) < eps or float(torch.pi - omega) < eps:
        return lerp(z0, z1, t)
    tt = t.double().reshape(-1, 1).to(a.device)
    out = (torch.sin((1 - tt) * omega) * a + torch.sin(tt * omega) * b) / torch.sin(omega)
    return out.to(z0.dtype)


def per_layer_mix(w0: Tensor, w1: Tensor, n_layers: int, layer: int, t: Tensor) -> Tensor:
    """``[m, n_layers, w_dim]``: every layer uses ``w0`` except ``layer``, which is ``lerp(w0, w1, t)``."""
    ws = w0.reshape(1, 1, -1).repeat(t.numel(), n_layers, 1)
    ws[:, layer] = lerp(w0, w1, t)
    return ws


def step_changes(images: Tensor, steps: int) -> Tensor:
    """Mean |pixel change| between consecutive frames of ``[rows * steps, C, H, W]`` -> ``[rows, steps-1]``."""
    x = images.float().reshape(-1, steps, *images.shape[1:])
    return (x[:, 1:] - x[:, :-1]).abs().flatten(2).mean(2)


def diversity(images: Tensor) -> float:
    """Mean per-pixel standard deviation across a batch (0 = identical images)."""
    return images.float().std(0).mean().item() if images.shape[0] > 1 else 0.0


def traversal_probe_dims(dims: int | list[int], latent_dim: int) -> list[int]:
    """The traversed coordinates: an int k means the first k; out-of-range ids are dropped."""
    chosen = list(range(min(int(dims), latent_dim))) if isinstance(dims, int) else [int(d) for d in dims]
    return [d for d in chosen if 0 <= d < latent_dim]


@register_probe("traversals")
def traversals_probe(
    ctx: ProbeContext,
    dims: int | list[int] = 6,  # latent coordinates to traverse (int = the first k)
    steps: int = 7,  # frames per traversal/interpolation
    span: float = 3.0,  # coordinate values run over [-span, span] (z ~ N(0, 1))
    n_pairs: int = 2,  # interpolation pairs (rows lerp and slerp each)
    freeze_dims: int = 3,  # the first k of `dims` get a freeze-and-resample row
    n_resample: int = 8,  # samples per freeze row
    w_space: bool = True,  # w traversals and per-layer mixing when the model has a mapping
) -> dict:
    """z traversals, lerp/slerp interpolations, freeze-and-resample grids (and w space)."""
    model, out, seed = ctx.model, ctx.out, ctx.seed
    chosen = traversal_probe_dims(dims, model.latent_dim)
    values = torch.linspace(-span, span, steps)
    z = fixed_z(model, max(2 * n_pairs, 1), seed)
    summary: dict = {"dims": chosen, "values": values.tolist()}

    if chosen:
        zs = torch.cat([traverse_dim(z[0], d, values) for d in chosen])
        members = pinned_members(model, z[:1], zs.shape[0])  # ensembles: z[0]'s member for every frame
        imgs = pinned_generate(model, members)(zs)
        if members is not None:
            summary["member"] = int(members[0])
        out.image(
            "z_dims", figures.image_grid(imgs, nrow=steps), caption=f"rows: z dims {chosen}; columns: {values.tolist()}"
        )
        change = step_changes(imgs, steps).mean(1)
        summary["z_dim_change"] = {str(d): c.item() for d, c in zip(chosen, change)}

    t = torch.linspace(0, 1, steps)
    rows, smooth = [], {}
    for p in range(n_pairs):
        for fn in (lerp, slerp):  # rows: pair p lerp, pair p slerp
            rows.append(fn(z[2 * p], z[2 * p + 1], t))
    if rows:
        starts = torch.stack([z[2 * p] for p in range(n_pairs) for _ in (lerp, slerp)])
        imgs = pinned_generate(model, pinned_members(model, starts, steps))(torch.cat(rows))
        out.image(
            "interpolations",
            figures.image_grid(imgs, nrow=steps),
            caption="rows: pair0 lerp, pair0 slerp, pair1 lerp, ...",
        )
        ch = step_changes(imgs, steps)
        for r in range(ch.shape[0]):
            smooth[f"pair{r // 2}_{'lerp' if r % 2 == 0 else 'slerp'}"] = (
                ch[r].max() / ch[r].mean().clamp_min(1e-12)
            ).item()
        summary["interpolation_max_over_mean_step"] = smooth

    g = seeded(seed + 11)
    frozen = chosen[:freeze_dims]
    if frozen:
        zs = torch.cat(
            [freeze_and_resample(z[0], d, n_resample, g) for d in frozen]
            + [torch.randn(n_resample, model.latent_dim, generator=g).to(z)]
        )
        imgs = model.generate(zs)
        out.image(
            "freeze_resample",
            figures.image_grid(imgs, nrow=n_resample),
            caption=f"rows: dims {frozen} frozen at z0's value, others resampled; last row: nothing frozen",
        )
        groups = imgs.reshape(len(frozen) + 1, n_resample, *imgs.shape[1:])
        base = diversity(groups[-1])
        summary["freeze_diversity"] = {str(d): diversity(groups[i]) for i, d in enumerate(frozen)} | {"none": base}

    if w_space and has_style_space(model):
        w = model.mapping(z)
        w_std = model.mapping(fixed_z(model, 256, seed + 3)).std(0)
        w_dims = [d for d in chosen if d < w.shape[1]]
        ws = torch.cat([traverse_dim(w[0], d, w[0, d] + values.to(w) * w_std[d]) for d in w_dims])
        imgs = model.synthesize(ws)  # [n, w_dim]: the same w for every layer
        out.image("w_dims", figures.image_grid(imgs, nrow=steps), caption=f"rows: w dims {w_dims} over +-{span} std")
        summary["w_dim_change"] = {str(d): c.item() for d, c in zip(w_dims, step_changes(imgs, steps).mean(1))}
        n_layers = model.n_ws
        mixes = torch.cat([per_layer_mix(w[0], w[1], n_layers, layer, t) for layer in range(n_layers)])
        imgs = model.synthesize(mixes)
        out.image(
            "w_per_layer", figures.image_grid(imgs, nrow=steps), caption="row l: only layer l moves from w0 to w1"
        )
        summary["w_per_layer_change"] = step_changes(imgs, steps).mean(1).tolist()
        summary["num_ws"] = n_layers
    out.json("summary", summary)
    return summary
