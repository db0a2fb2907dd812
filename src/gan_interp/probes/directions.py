"""Direction discovery in latent space: GANSpace-style PCA and SeFa, with random-direction controls.

* :func:`pca` - principal directions (orthonormal rows) of samples ``[n, p]``.
* GANSpace (Haerkoenen et al. 2020): PCA of ``w = mapping(z)`` for StyleGAN-like models, or PCA of
  one generator layer's activations mapped back to z by least squares (``z ~ coords @ U``; the
  rows of ``U`` are the z directions), see :func:`ganspace_directions`.
* SeFa (Shen & Zhou 2021): closed form, no sampling. With ``A`` the weight of ``model.sefa_weight()``
  (by default the generator's first layer; StyleGAN-lite: its style affines, in w) as an
  ``[outputs, inputs]`` matrix, the directions are the top eigenvectors of ``A^T A`` - the unit
  inputs that change that layer's output the most. :func:`sefa_matrix` builds ``A``: a Linear
  weight is used as is; a ``ConvTranspose2d`` weight ``[nz, C, kh, kw]`` (DCGAN's first layer) is
  reshaped to ``[nz, C*kh*kw]`` and transposed to ``[C*kh*kw, nz]``; ``normalize`` scales each
  output unit's row to unit norm (as the official SeFa code does).

Traversal grids move a base latent by ``alpha * s_d * d`` where ``s_d`` is the latent's std along
direction ``d`` (1 in z space; estimated from samples in w space), so PCA, SeFa and random
directions are compared on the same scale.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gan_interp.capture import run_capturing
from gan_interp.models.base import has_style_space
from gan_interp.probes import figures
from gan_interp.probes.context import ProbeContext
from gan_interp.probes.latents import fixed_z, seeded
from gan_interp.probes.registry import register_probe
from gan_interp.probes.traversals import step_changes


def pca(x: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """PCA of ``x [n, p]``: ``(mean [p], components [k, p] orthonormal, variance [k], variance ratio [k])``.

    Exact, via the eigendecomposition of the smaller of the two Gram matrices (``n x n`` or
    ``p x p``); components with (numerically) zero variance are dropped, so fewer than ``k`` may
    come back when ``n - 1 < k``.
    """
    x = x.reshape(x.shape[0], -1).double()
    mean = x.mean(0)
    xc = x - mean
    n, p = xc.shape
    total = xc.pow(2).sum() / max(n - 1, 1)
    if n <= p:
        evals, u = torch.linalg.eigh(xc @ xc.T)
        order = torch.argsort(evals, descending=True)
        evals, u = evals[order].clamp_min(0), u[:, order]
        keep = int((evals > evals[0].clamp_min(1e-300) * 1e-10).sum().clamp(max=k))
        comps = (xc.T @ u[:, :keep]) / evals[:keep].sqrt()
        comps = (comps / comps.norm(dim=0, keepdim=True)).T
    else:
        evals, v = torch.linalg.eigh(xc.T @ xc)
        order = torch.argsort(evals, descending=True)
        evals, v = evals[order].clamp_min(0), v[:, order]
        keep = min(k, p)
        comps = v[:, :keep].T
    var = evals[:keep] / max(n - 1, 1)
    return mean.float(), comps.float(), var.float(), (var / total.clamp_min(1e-300)).float()


def sefa_matrix(weight: Tensor, normalize: bool = True) -> Tensor:
    """``A [outputs, inputs]`` from a first-layer weight.

    Linear ``[out, in]`` as is; ConvTranspose2d ``[in, out, kh, kw]`` reshaped and transposed.
    """
    w = weight.detach().double()
    a = w.reshape(w.shape[0], -1).T if w.ndim == 4 else w.reshape(w.shape[0], -1)
    if normalize:
        a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return a


def sefa_directions(a: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Top-``k`` eigenpairs of ``A^T A``: ``(eigenvalues [k] descending, directions [k, inputs] orthonormal)``."""
    evals, evecs = torch.linalg.eigh(a.double().T @ a.double())
    order = torch.argsort(evals, descending=True)[:k]
    return evals[order].float(), evecs[:, order].T.float()


def random_directions(k: int, dim: int, generator: torch.Generator | None = None) -> Tensor:
    """``[k, dim]`` random unit vectors (the control for discovered directions)."""
    d = torch.randn(k, dim, generator=generator)
    return d / d.norm(dim=1, keepdim=True)


def ganspace_directions(
    model, space: str, layer: str | None, n_samples: int, k: int, seed: int
) -> tuple[Tensor, Tensor, str]:
    """GANSpace directions ``[k, dim]``, their explained-variance ratios ``[k]`` and their space.

    ``space='w'``: PCA of w; ``'z'``: PCA of z (an isotropic control: near-uniform variance);
    ``'activations'``: PCA of ``layer``'s flattened output, mapped back to z by least squares.
    """
    z = fixed_z(model, n_samples, seed + 5)
    if space == "w":
        _, comps, _, ratio = pca(model.mapping(z).float().cpu(), k)
        return comps, ratio, "w"
    if space == "z":
        _, comps, _, ratio = pca(z.float().cpu(), k)
        return comps, ratio, "z"
    layers = model.generator_layers()
    name = layer or next(iter(layers))
    if name not in layers:
        raise ValueError(f"layer {name!r} is not a generator layer; choose from {', '.join(layers)}")
    act = run_capturing({name: layers[name]}, lambda: model.generate(z))[name]
    mean, comps, _, ratio = pca(act.float().cpu().flatten(1), k)
    coords = (act.float().cpu().flatten(1) - mean) @ comps.T  # [n, k]
    u = torch.linalg.lstsq(coords.double(), z.double().cpu()).solution.float()  # [k, d]: coords -> z
    return u / u.norm(dim=1, keepdim=True).clamp_min(1e-12), ratio, "z"


def _latent_std(model, space: str, directions: Tensor, seed: int) -> Tensor:
    """Std of the latent along each direction (1 for z; from 256 samples for w)."""
    if space == "z":
        return torch.ones(directions.shape[0])
    w = model.mapping(fixed_z(model, 256, seed + 9)).float().cpu()
    return (w @ directions.T).std(0)


def traversal_images(model, base: Tensor, directions: Tensor, alphas: Tensor, space: str, scale: Tensor) -> Tensor:
    """Images ``[k * len(alphas), C, H, W]``: row ``i`` is ``base + alpha * scale_i * direction_i``."""
    lat = base.reshape(1, 1, -1).cpu() + alphas.reshape(1, -1, 1) * (
        scale.reshape(-1, 1, 1) * directions.reshape(directions.shape[0], 1, -1)
    )
    lat = lat.reshape(-1, base.numel()).to(base.device, base.dtype)
    return model.generate(lat) if space == "z" else model.synthesize(lat)


@register_probe("directions")
def directions_probe(
    ctx: ProbeContext,
    methods: list[str] = ("sefa", "ganspace"),  # which discoveries to run
    k: int = 5,  # directions per method (grid rows)
    steps: int = 7,  # frames per direction
    span: float = 3.0,  # alphas run over [-span, span] latent stds
    ganspace_space: str = "auto",  # auto (w if the model has a mapping, else activations), w, z, activations
    ganspace_layer: str | None = None,  # generator layer for space=activations (None = the first)
    n_samples: int = 128,  # samples for PCA
    sefa_normalize: bool = True,  # unit-norm rows of A (official SeFa)
    member: int = 0,  # k-GAN: the member whose generator is analysed (via model.member_view)
) -> dict:
    """SeFa and GANSpace direction grids, each next to a random-direction control grid."""
    model, out, seed = ctx.model, ctx.out, ctx.seed
    member_id = None
    if model.n_members:
        model, member_id = model.member_view(member), int(member)  # directions belong to one generator
    alphas = torch.linspace(-span, span, steps)
    z0 = fixed_z(model, 1, seed)
    summary: dict = {"alphas": alphas.tolist()}
    if member_id is not None:
        summary["member"] = member_id
    for method in methods:
        if method == "sefa":
            weight, space = model.sefa_weight()
            if space == "w" and not has_style_space(model):
                raise ValueError(f"{type(model).__name__}.sefa_weight() acts on w but the model has no style space")
            a = sefa_matrix(weight, normalize=sefa_normalize)
            evals, dirs = sefa_directions(a, k)
            info = {
                "space": space,
                "eigenvalues": evals.tolist(),
                "eigenvalue_share": (evals / torch.linalg.eigvalsh(a.T @ a).sum()).tolist(),
            }
        elif method == "ganspace":
            auto = "w" if has_style_space(model) else "activations"
            pca_space = auto if ganspace_space == "auto" else ganspace_space
            dirs, ratio, space = ganspace_directions(model, pca_space, ganspace_layer, n_samples, k, seed)
            info = {"space": space, "pca_space": pca_space, "explained_variance_ratio": ratio.tolist()}
        else:
            raise ValueError(f"directions method {method!r} is unknown; use sefa or ganspace")
        base = z0 if space == "z" else model.mapping(z0)
        if dirs.shape[1] != base.shape[1]:  # a sefa_weight() whose inputs are not the latent: a model bug
            raise ValueError(f"{method} directions have {dirs.shape[1]} inputs; the {space} space has {base.shape[1]}")
        ctrl = random_directions(dirs.shape[0], dirs.shape[1], seeded(seed + 13))
        effects = {}
        for tag, d in (("", dirs), ("_random_control", ctrl)):
            imgs = traversal_images(model, base[0], d, alphas, space, _latent_std(model, space, d, seed))
            out.image(
                f"{method}{tag}",
                figures.image_grid(imgs, nrow=steps),
                caption=f"{method}{tag} in {space}: rows = directions, columns = {alphas.tolist()} std",
            )
            effects[tag or "discovered"] = step_changes(imgs, steps).sum(1)  # total |change| along each row
        info["effect"] = effects["discovered"].tolist()
        info["random_effect"] = effects["_random_control"].tolist()
        info["effect_ratio_vs_random"] = (
            effects["discovered"].mean() / effects["_random_control"].mean().clamp_min(1e-12)
        ).item()
        out.table(
            f"{method}_directions",
            ["direction", "effect", "random_effect"],
            [[i, e, r] for i, (e, r) in enumerate(zip(info["effect"], info["random_effect"]))],
        )
        summary[method] = info
    out.json("summary", summary)
    return summary
