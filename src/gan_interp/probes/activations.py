"""Activation maps of generator/discriminator layers and linear CKA between them.

* :func:`layer_activations` - outputs of named layers for a batch (forward hooks, early stop).
* :func:`linear_cka` - linear Centered Kernel Alignment (Kornblith et al. 2019) between two
  representations of the same ``n`` inputs: ``CKA(X, Y) = <Kc, Lc>_F / (||Kc||_F ||Lc||_F)`` with
  ``K = X X^T``, ``L = Y Y^T`` and ``Kc = H K H`` (centred Gram matrices). ``CKA(X, X) = 1``; it is
  invariant to orthogonal transforms and isotropic scaling of either side.
* :func:`cka_matrix` - CKA between every pair of layers (of one model, two epochs or two models).

CKA and cosine similarities are computed on activations average-pooled to at most
``cka_pool`` x ``cka_pool`` positions per channel (bounded cost for large layers).

The probe writes per-channel grids, mean activation per layer, the layer x layer CKA matrices of
G (fixed z) and D (real images), CKA of "similar inputs" (z vs z + small noise; real images vs
slightly noisy copies) against a control of unrelated inputs, and CKA across epochs against the
newest earlier ``epoch_*`` folder of the same run (pooled activations are stored as ``acts.pt``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_interp.capture import run_capturing
from gan_interp.io import torch_save
from gan_interp.probes import figures
from gan_interp.probes.context import ProbeContext
from gan_interp.probes.latents import fixed_z, seeded
from gan_interp.probes.registry import register_probe


def layer_activations(
    layers: Mapping[str, nn.Module], fn: Callable[[], object], stop_early: bool = True
) -> dict[str, Tensor]:
    """Outputs of ``layers`` (name -> module) while running ``fn()``, in ``layers`` order."""
    store = run_capturing(dict(layers), fn, stop_early=stop_early)
    return {k: store[k] for k in layers if k in store}


def pooled(act: Tensor, max_side: int = 8) -> Tensor:
    """``[n, C, h, w]`` -> ``[n, C * s * s]`` with adaptive average pooling to at most ``max_side``."""
    if act.ndim == 4 and max(act.shape[2:]) > max_side:
        act = F.adaptive_avg_pool2d(act.float(), (min(act.shape[2], max_side), min(act.shape[3], max_side)))
    return act.reshape(act.shape[0], -1).float()


def centered_gram(x: Tensor) -> Tensor:
    """``H X X^T H`` for ``x [n, ...]`` (float64): the linear-kernel Gram matrix of centred features."""
    x = x.reshape(x.shape[0], -1).double()
    x = x - x.mean(0, keepdim=True)  # centring the features == H K H for the linear kernel
    return x @ x.T


def cka_from_grams(gram_x: Tensor, gram_y: Tensor) -> float:
    """CKA from two centred Gram matrices (NaN if either is zero: a constant representation)."""
    norm = torch.sqrt((gram_x * gram_x).sum() * (gram_y * gram_y).sum())
    return float((gram_x * gram_y).sum() / norm) if norm > 0 else float("nan")


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA between ``x [n, p]`` and ``y [n, q]`` (rows are the same ``n`` inputs).

    NaN when either side is constant over the inputs (its centred Gram matrix is zero).
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same inputs on both sides: {x.shape[0]} vs {y.shape[0]} rows")
    return cka_from_grams(centered_gram(x), centered_gram(y))


def cka_matrix(acts_a: Mapping[str, Tensor], acts_b: Mapping[str, Tensor] | None = None) -> Tensor:
    """``[len(a), len(b)]`` CKA between every layer of ``acts_a`` and every layer of ``acts_b`` (default: a)."""
    grams_a = {k: centered_gram(v) for k, v in acts_a.items()}
    grams_b = grams_a if acts_b is None or acts_b is acts_a else {k: centered_gram(v) for k, v in acts_b.items()}
    out = torch.empty(len(grams_a), len(grams_b), dtype=torch.float64)
    for i, ka in enumerate(grams_a.values()):
        for j, kb in enumerate(grams_b.values()):
            out[i, j] = cka_from_grams(ka, kb)
    return out


def mean_cosine(x: Tensor, y: Tensor) -> float:
    """Mean per-row cosine similarity of two ``[n, p]`` activation batches (the probe uses pooled ones)."""
    return float(F.cosine_similarity(x.flatten(1).float(), y.flatten(1).float(), dim=1).mean())


def activation_stats(acts: Mapping[str, Tensor]) -> list[list]:
    """Rows ``[layer, channels, mean, std, frac_positive]`` per layer."""
    rows = []
    for name, a in acts.items():
        a = a.float()
        rows.append(
            [name, int(a.shape[1]) if a.ndim > 1 else 1, a.mean().item(), a.std().item(), (a > 0).float().mean().item()]
        )
    return rows


def generator_acts(model, z: Tensor, layers: Mapping[str, nn.Module]) -> dict[str, Tensor]:
    return layer_activations(layers, lambda: model.generate(z))


def critic_acts(model, x: Tensor, layers: Mapping[str, nn.Module]) -> dict[str, Tensor]:
    return layer_activations(layers, lambda: model.critic(x))


def cka_across_models(
    model_a, model_b, inputs: Tensor, side: str = "generator", max_side: int = 8
) -> tuple[Tensor, list[str], list[str]]:
    """CKA between every layer of two models (or two checkpoints) on the same inputs.

    ``side='generator'``: ``inputs`` are latents; ``'discriminator'``: images. Returns the matrix
    and the row (model a) / column (model b) layer names.
    """
    if side == "generator":
        a = generator_acts(model_a, inputs.to(model_a.device), model_a.generator_layers())
        b = generator_acts(model_b, inputs.to(model_b.device), model_b.generator_layers())
    else:
        a = critic_acts(model_a, inputs.to(model_a.device), model_a.discriminator_layers())
        b = critic_acts(model_b, inputs.to(model_b.device), model_b.discriminator_layers())
    pa, pb = {k: pooled(v, max_side).cpu() for k, v in a.items()}, {k: pooled(v, max_side).cpu() for k, v in b.items()}
    return cka_matrix(pa, pb), list(pa), list(pb)


def _previous_acts(out_dir: Path) -> tuple[int, dict] | None:
    """The stored pooled activations of the newest earlier ``epoch_*`` sibling folder, if any."""
    m = re.fullmatch(r"epoch_(\d+)", Path(out_dir).name)
    if m is None:
        return None
    current, best = int(m.group(1)), None
    for f in Path(out_dir).parent.glob("epoch_*/activations/acts.pt"):
        mm = re.fullmatch(r"epoch_(\d+)", f.parent.parent.name)
        if mm and int(mm.group(1)) < current and (best is None or int(mm.group(1)) > best[0]):
            best = (int(mm.group(1)), f)
    if best is None:
        return None
    try:
        return best[0], torch.load(best[1], map_location="cpu", weights_only=True)
    except Exception:  # a truncated file from a killed run: just skip the comparison
        return None


@register_probe("activations")
def activations_probe(
    ctx: ProbeContext,
    n: int = 8,  # inputs per batch (CKA uses these n rows)
    max_channels: int = 32,  # channels shown per layer grid
    grid_layers: list[str] | None = None,  # layers with channel grids (None = all)
    map_size: int = 32,  # display side of each channel map
    similar_noise: float = 0.1,  # "similar input": z + N(0, s^2); real + N(0, s^2)
    cka_pool: int = 8,  # activations are average-pooled to at most this side before CKA
    across_epochs: bool = True,  # compare with the newest earlier epoch folder (stores acts.pt)
) -> dict:
    """Channel grids, mean activation per layer and CKA (layers, similar inputs, epochs)."""
    model, datamodule, out, seed = ctx.model, ctx.datamodule, ctx.out, ctx.seed
    g = seeded(seed + 1)
    z = fixed_z(model, n, seed)
    z_similar = z + similar_noise * torch.randn(z.shape, generator=g).to(z.device)
    z_other = fixed_z(model, n, seed + 7)
    sides: dict[str, tuple[dict, Callable]] = {
        "G": (model.generator_layers(), lambda inp: generator_acts(model, inp, model.generator_layers()))
    }
    batches: dict[str, tuple[Tensor, Tensor, Tensor]] = {"G": (z, z_similar, z_other)}
    real = datamodule.images("train", 2 * n) if datamodule is not None else torch.empty(0)  # seeded, stratified
    d_layers = model.discriminator_layers()
    if d_layers:
        if real.shape[0] >= 2 * n:
            x, x_other = real[:n].to(model.device), real[n : 2 * n].to(model.device)
        else:  # no data: fakes stand in for real images
            x, x_other = model.generate(z), model.generate(z_other)
        x_similar = (x + similar_noise * torch.randn(x.shape, generator=g).to(x.device)).clamp(-1, 1)
        sides["D"] = (d_layers, lambda inp: critic_acts(model, inp, d_layers))
        batches["D"] = (x, x_similar, x_other)

    summary: dict = {"n": n, "similar_noise": similar_noise, "layers": {}, "cka_layers": {}, "similar_inputs": {}}
    stored: dict[str, Tensor] = {}
    for side, (layers, run) in sides.items():
        if not layers:
            continue
        base, similar, other = (run(b) for b in batches[side])
        stats = activation_stats(base)
        out.table(f"{side}_layer_stats", ["layer", "channels", "mean", "std", "frac_positive"], stats)
        out.image(
            f"{side}_mean_activation",
            figures.bar_figure([r[2] for r in stats], [r[0] for r in stats], f"{side}: mean activation per layer"),
            caption=f"{side}: one bar per layer, forward order",
        )
        summary["layers"][side] = {
            r[0]: {"channels": r[1], "mean": r[2], "std": r[3], "frac_positive": r[4]} for r in stats
        }
        for name, act in base.items():
            if act.ndim == 4 and (grid_layers is None or name in grid_layers):
                maps = figures.channel_maps(act[0], max_channels, size=map_size)
                out.image(
                    f"{side}_{name}_channels",
                    figures.image_grid(maps, nrow=8, unit=True),
                    caption=f"{side} {name} ({ctx.stages.name(side, name)}): channels 0..{maps.shape[0] - 1} "
                    "of input 0, 8 per row",
                    log_name=f"{ctx.stages.name(side, name)}_channels",  # the same key for every architecture
                )
        p_base, p_sim, p_other = (
            {k: pooled(v, cka_pool).cpu() for k, v in acts.items()} for acts in (base, similar, other)
        )
        names = list(p_base)
        mat = cka_matrix(p_base)
        out.image(
            f"{side}_cka_layers",
            figures.matrix_figure(mat, names, names, f"{side}: linear CKA between layers"),
            caption=f"{side}: linear CKA, rows and columns = layers in forward order",
        )
        summary["cka_layers"][side] = {"layers": names, "matrix": mat.tolist()}
        rows = []
        for k in names:
            gb, gs, go = centered_gram(p_base[k]), centered_gram(p_sim[k]), centered_gram(p_other[k])
            rows.append(
                [
                    k,
                    cka_from_grams(gb, gs),
                    cka_from_grams(gb, go),
                    mean_cosine(p_base[k], p_sim[k]),
                    mean_cosine(p_base[k], p_other[k]),
                ]
            )
        out.table(
            f"{side}_similar_inputs", ["layer", "cka_similar", "cka_unrelated", "cos_similar", "cos_unrelated"], rows
        )
        summary["similar_inputs"][side] = {
            r[0]: {"cka_similar": r[1], "cka_unrelated": r[2], "cos_similar": r[3], "cos_unrelated": r[4]} for r in rows
        }
        stored.update({f"{side}/{k}": v.half() for k, v in p_base.items()})

    if across_epochs:
        prev = _previous_acts(out.dir.parent)  # out.dir is <run>/probes/epoch_XXX/activations
        if prev is not None:
            prev_epoch, prev_acts = prev
            same_inputs = int(prev_acts.get("_seed", torch.tensor(-1))) == seed
            common = [k for k in stored if same_inputs and k in prev_acts and prev_acts[k].shape == stored[k].shape]
            rows = [[k, linear_cka(prev_acts[k].float(), stored[k].float())] for k in common]
            if rows:
                out.table("cka_vs_previous_epoch", ["layer", "cka"], rows)
                out.image(
                    "cka_vs_previous_epoch",
                    figures.bar_figure([r[1] for r in rows], [r[0] for r in rows], f"CKA vs epoch {prev_epoch}", "CKA"),
                    caption=f"one bar per layer: linear CKA with the same layer after epoch {prev_epoch}",
                )
            summary["cka_vs_previous_epoch"] = {"epoch": prev_epoch, **{r[0]: r[1] for r in rows}}
        torch_save({**stored, "_seed": torch.tensor(seed)}, out.dir / "acts.pt")
    out.json("summary", summary)
    return summary
