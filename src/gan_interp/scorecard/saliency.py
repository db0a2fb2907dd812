"""Scorecard: SmoothGrad saliency of the critic - the model-parameter randomisation test of Adebayo et al.
2018 ("Sanity Checks for Saliency Maps") and concept share vs area share on real posters.

Cascading randomisation: stage 1 re-initialises the critic's top - its parameters outside every
``discriminator_layers()`` entry (DCGAN: the score convolution), or the last layer when there are none -
and each further stage also the next layer down (``discriminator_layers()`` in reverse order), in a copy
of the model; the re-initialised values (parameters and buffers) come from a model of the same
architecture at random init (a fresh seed, never the reference's own starting weights), so
"re-initialised" means the model's own initialisation scheme. At every stage the
SmoothGrad maps of the same real images, drawn with the same noise, are compared with the trained
critic's: Spearman rank correlation of ``|map|`` (absolute SmoothGrad) and of the signed map (signed
SmoothGrad, summed over channels), and SSIM of the ``[0, 1]``-normalised ``|map|``s. Maps that explain the
model change when its weights do: the similarity falls along the cascade.

Concept share: the fraction of ``|map|`` mass inside each concept's mask next to the concept's share of
the area (:func:`~gan_interp.probes.saliency.concept_shares`); one number per model, the total-variation
distance between the two (0: the critic looks at every concept in proportion to its size).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor

from gan_interp.metrics.ssim import ssim_per_pair
from gan_interp.probes.figures import normalize_maps
from gan_interp.probes.gradients import critic_fn, frozen_parameters
from gan_interp.probes.saliency import concept_shares, saliency_maps, smoothgrad
from gan_interp.scorecard.known_answers import LinearCritic, mask_critic, smooth_pattern
from gan_interp.scorecard.models import random_init_like
from gan_interp.scorecard.rows import ScoreRow

SIMILARITIES = ("spearman_abs", "spearman_signed", "ssim")
_WORDS = {
    "spearman_abs": "Spearman rank corr. of |SmoothGrad|",
    "spearman_signed": "Spearman rank corr. of signed SmoothGrad",
    "ssim": "SSIM of normalised |SmoothGrad|",
}


@dataclass(frozen=True)
class SaliencySettings:
    n: int = 32  # real images (the probe sample of the train split)
    nt_samples: int = 16  # SmoothGrad noisy copies per image
    stdevs: float = 0.1  # SmoothGrad noise std (images span [-1, 1]; the saliency probe's default)
    batch_size: int = 64  # noisy copies per forward pass
    max_similarity: float = 0.5  # the fully randomised critic's maps must be less similar than this
    trend_tolerance: float = 0.05  # monotone-ish: the last stage may exceed the first by at most this
    planted_max: float = 0.2  # planted linear critic: |similarity| after re-initialising its weight
    planted_share: float = 0.99  # planted orb critic: the orb's share of |map| mass
    planted_concept: str = "orb"


TINY = SaliencySettings(n=6, nt_samples=8)


def member0(model):
    """k-GAN: member 0 as a stand-alone model (its own critic); other models as they are."""
    return model.member_view(0) if getattr(model, "n_members", 0) else model


def critic_stages(model, x: Tensor) -> list[tuple[str, list[str]]]:
    """Cascade stages, top first: ``(name, state_dict keys)``; ``"head"`` = critic parameters outside every
    ``discriminator_layers()`` entry (found by which parameters get a gradient from ``critic(x)``)."""
    names = {id(m): n for n, m in model.named_modules()}
    prefixes = {layer: names[id(m)] for layer, m in model.discriminator_layers().items()}
    params = dict(model.named_parameters())
    with torch.enable_grad():
        flags = {n: p.requires_grad for n, p in params.items()}
        for p in params.values():
            p.requires_grad_(True)
        try:
            grads = torch.autograd.grad(model.critic(x).sum(), list(params.values()), allow_unused=True)
        finally:
            for n, p in params.items():
                p.requires_grad_(flags[n])
    used = [n for n, g in zip(params, grads) if g is not None]
    inside = lambda key, prefix: prefix == "" or key.startswith(prefix + ".")  # noqa: E731
    head = [k for k in used if not any(inside(k, p) for p in prefixes.values())]
    owners = {k.rsplit(".", 1)[0] for k in head}
    head += [k for k in dict(model.named_buffers()) if k.rsplit(".", 1)[0] in owners]
    keys = list(model.state_dict())
    stages = [("head", head)] if head else []
    for layer, prefix in reversed(list(prefixes.items())):
        layer_keys = [k for k in keys if inside(k, prefix)]
        if layer_keys:
            stages.append((layer, layer_keys))
    return stages


def reinitialised(model, source, keys: list[str]):
    """A copy of ``model`` whose ``keys`` (state_dict entries) hold ``source``'s values."""
    out = copy.deepcopy(model)
    state, fresh = out.state_dict(), source.state_dict()
    for k in keys:
        state[k] = fresh[k].detach().clone()
    out.load_state_dict(state)
    return out.eval()


def smoothgrad_maps(model, x: Tensor, s: SaliencySettings, seed: int) -> tuple[Tensor, Tensor]:
    """``(|map| [n, H, W], signed map [n, H, W])`` of ``model.critic`` at ``x``; the noise is seeded by ``seed``."""
    out = []
    with frozen_parameters(model):
        for absolute in (True, False):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                attr = smoothgrad(critic_fn(model), x, s.nt_samples, s.stdevs, s.batch_size, absolute).cpu()
            out.append(saliency_maps(attr) if absolute else attr.sum(1))
    return out[0], out[1]


def _spearman(a: Tensor, b: Tensor) -> float:
    """Mean over images of the Spearman rank correlation of ``a[i]`` and ``b[i]`` (a constant map counts 0)."""
    vals = []
    for u, v in zip(a.flatten(1).double().numpy(), b.flatten(1).double().numpy()):
        rho = spearmanr(u, v).statistic if u.std() > 0 and v.std() > 0 else 0.0
        vals.append(0.0 if not np.isfinite(rho) else float(rho))
    return float(np.mean(vals))


def similarities(base: tuple[Tensor, Tensor], other: tuple[Tensor, Tensor]) -> dict[str, float]:
    """Spearman of |maps| and of signed maps, SSIM of normalised |maps| (means over images)."""
    a, b = normalize_maps(base[0]).unsqueeze(1), normalize_maps(other[0]).unsqueeze(1)
    return {
        "spearman_abs": _spearman(base[0], other[0]),
        "spearman_signed": _spearman(base[1], other[1]),
        "ssim": float(ssim_per_pair(a, b, kernel_size=min(11, a.shape[-1] // 2 * 2 - 1)).mean()),
    }


def cascade(model, source, x: Tensor, s: SaliencySettings, seed: int) -> dict:
    """Similarity of the trained maps to each cascading stage's: ``{"stages": [...], metric: [per stage]}``."""
    base = smoothgrad_maps(model, x, s, seed)
    stages = critic_stages(model, x)
    out: dict = {"stages": [name for name, _ in stages], **{k: [] for k in SIMILARITIES}, "maps": base}
    keys: list[str] = []
    for _, stage_keys in stages:
        keys += stage_keys
        sims = similarities(base, smoothgrad_maps(reinitialised(model, source, keys), x, s, seed))
        for k in SIMILARITIES:
            out[k].append(sims[k])
    return out


def _planted_cascade(x: Tensor, s: SaliencySettings, seed: int) -> dict:
    """The linear critic ``<w, x>`` (a smooth plaid ``w``) re-initialised with Gaussian weights: known ~0."""
    w = smooth_pattern(x.shape[1], x.shape[-1])
    fresh = torch.randn(w.shape, generator=torch.Generator().manual_seed(int(seed) + 1))
    return cascade(LinearCritic(w), LinearCritic(fresh), x, s, seed)


def planted_concept_share(x: Tensor, masks: Tensor, concept: int, s: SaliencySettings, seed: int) -> float | None:
    """|map| mass share of ``concept`` for the critic ``sum(x * mask)`` of each image (images that show it)."""
    rows = [i for i in range(x.shape[0]) if bool(masks[i, concept].any())]
    if not rows:
        return None
    maps = []
    for i in rows:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            attr = smoothgrad(mask_critic(masks[i, concept]), x[i : i + 1], s.nt_samples, s.stdevs, s.batch_size)
        maps.append(saliency_maps(attr))
    mass, _ = concept_shares(torch.cat(maps), masks[rows])
    return float(mass[concept])


def _shares(maps: Tensor, masks: Tensor, names: list[str]) -> dict:
    mass, area = concept_shares(maps, masks)
    ratio = mass / area.clamp_min(1e-12)
    return {
        "tv_distance": float(0.5 * (mass - area).abs().sum()),
        "per_concept": {
            c: {"share": float(mass[i]), "area": float(area[i]), "ratio": float(ratio[i])} for i, c in enumerate(names)
        },
        "top": names[int(ratio.argmax())],
    }


def cascade_rows(ref: dict, rand: dict, planted: dict, s: SaliencySettings) -> list[ScoreRow]:
    """One row per similarity: its value at the fully randomised stage (all stages in ``details``)."""
    rows = []
    for k in SIMILARITIES:
        last, first = ref[k][-1], ref[k][0]
        planted_last = planted[k][-1]
        ref_ok = last < s.max_similarity and last <= first + s.trend_tolerance
        planted_ok = abs(planted_last) < s.planted_max
        note = "" if ref_ok else "the maps barely change when the critic is randomised: they do not explain it"
        if not planted_ok:
            note += "; the planted linear critic's maps survived re-initialisation: the comparison is broken"
        rows.append(
            ScoreRow(
                probe="saliency",
                reading=f"cascading randomisation: {_WORDS[k]}, trained vs fully randomised critic",
                reference=last,
                random_init=rand[k][-1],
                planted=planted_last,
                criterion=(
                    f"reference < {s.max_similarity} and <= its first (top-layer) stage + {s.trend_tolerance}; "
                    f"planted linear critic |value| < {s.planted_max}"
                ),
                passed=bool(ref_ok and planted_ok),
                note=note.lstrip("; "),
                details={
                    "stages": ref["stages"],
                    "reference": ref[k],
                    "random_init": rand[k],
                    "random_init_stages": rand["stages"],
                    "planted": planted[k],
                },
            )
        )
    return rows


def share_row(ref: dict | None, rand: dict | None, planted: float | None, s: SaliencySettings) -> ScoreRow:
    ok = planted is not None and planted >= s.planted_share
    note = (
        "no concept masks in the data"
        if ref is None
        else (
            f"reference looks most at {ref['top']} (share/area {ref['per_concept'][ref['top']]['ratio']:.2f}); "
            f"random init at {rand['top']} ({rand['per_concept'][rand['top']]['ratio']:.2f})"
        )
    )
    return ScoreRow(
        probe="saliency",
        reading="concept share vs area share on real posters: TV distance (0 = |map| follows area); planted: orb share",
        reference=None if ref is None else ref["tv_distance"],
        random_init=None if rand is None else rand["tv_distance"],
        planted=planted,
        criterion=f"planted critic sum(x * {s.planted_concept} mask) puts >= {s.planted_share} of the |map| mass there",
        passed=None if ref is None else ok,
        note=note,
        details={"reference": ref, "random_init": rand},
    )


def fresh_inits(ref, rand, seed: int, count: int = 2) -> list:
    """``count`` random inits of ``ref``'s architecture, each unlike ``rand`` and the others: the re-init sources.

    Not ``rand`` itself: ``random_init_like(ref, seed)`` with the training run's seed rebuilds the reference's own
    starting weights, and re-initialising to those would barely change a briefly trained critic."""
    out: list = []
    for k in range(1, 10 + count):
        other = random_init_like(ref, seed=seed + 7919 * k)
        a = member0(other).state_dict()
        taken = [member0(m).state_dict() for m in (rand, *out)]
        if all(any(not torch.equal(a[key], b[key]) for key in a if a[key].is_floating_point()) for b in taken):
            out.append(other)
        if len(out) == count:
            return out
    raise RuntimeError("could not draw random inits different from rand")


def check_saliency(ref, rand, dm, *, seed: int = 0, tiny: bool = False) -> list[ScoreRow]:
    """SmoothGrad sanity checks: cascading model-parameter randomisation (3 rows) and concept share (1 row)."""
    s = TINY if tiny else SaliencySettings()
    t0 = time.perf_counter()
    x, masks = dm.images_with_masks("train", s.n)
    x = x.float()
    m_ref, m_rand = member0(ref), member0(rand)
    source_ref, source_rand = (member0(m) for m in fresh_inits(ref, rand, seed))
    ref_c = cascade(m_ref, source_ref, x, s, seed)
    rand_c = cascade(m_rand, source_rand, x, s, seed)
    planted_c = _planted_cascade(x, s, seed)
    ref_sh = rand_sh = planted_sh = None
    names = list(dm.concept_names or [])
    if masks is not None and tuple(masks.shape[2:]) == tuple(x.shape[2:]) and s.planted_concept in names:
        mt = torch.from_numpy(np.ascontiguousarray(masks))
        ref_sh, rand_sh = _shares(ref_c["maps"][0], mt, names), _shares(rand_c["maps"][0], mt, names)
        planted_sh = planted_concept_share(x, mt, names.index(s.planted_concept), s, seed)
    rows = cascade_rows(ref_c, rand_c, planted_c, s) + [share_row(ref_sh, rand_sh, planted_sh, s)]
    for row in rows:
        row.details |= {"settings": asdict(s), "seconds": time.perf_counter() - t0}
    return rows
