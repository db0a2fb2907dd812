"""Scorecard: do latent directions (SeFa, GANSpace, single z dims) control the posters' known factors?

For a direction ``d`` and a factor ``f`` (read off the image by :mod:`gan_interp.scorecard.factors`):
take ``n_bases`` latents, set each one's coordinate along ``d`` to each of ``steps`` values in
``[-span, span]`` latent stds (the rest of the latent unchanged; for a basis vector this is exactly
:func:`~gan_interp.probes.traversals.traverse_dim`), render, read ``f`` and take ``|corr(value, f)|``
over all ``n_bases * steps`` images. 1 means moving along ``d`` alone sets the factor, whatever the
rest of the latent; a direction that does not touch the factor scores ~0. Every set of directions
(SeFa and GANSpace from :mod:`gan_interp.probes.directions`, single z dims) has a control: as many
random unit directions in the same space, moved by the same steps.

Rows (one per factor, plus seed 000's question "do single latent dims control brightness / background
colour?"): reference model, random init, and the :class:`~gan_interp.scorecard.known_answers.PlantedPosterGenerator`
whose single dims drive known factors (:data:`~gan_interp.scorecard.known_answers.PLANTED_DIMS`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from gan_interp.data.synthetic_posters import CONCEPTS, RESOLUTIONS
from gan_interp.models.base import has_style_space
from gan_interp.probes.directions import ganspace_directions, random_directions, sefa_directions, sefa_matrix
from gan_interp.probes.latents import fixed_z, generate_batched, seeded
from gan_interp.scorecard.factors import DIRECT_FACTORS, FactorReader, brightness, factor_table, fit_factor_reader
from gan_interp.scorecard.known_answers import PLANTED_DIMS, PlantedPosterGenerator
from gan_interp.scorecard.rows import ScoreRow

QUESTION_FACTORS = ("brightness", "bg_luminance", "bg_rg", "bg_yb")  # seed 000: brightness / background colour


@dataclass(frozen=True)
class DirectionSettings:
    k: int = 5  # SeFa / GANSpace directions
    n_dims: int | None = None  # single z dims traversed (None = every dim)
    n_bases: int = 24  # base latents per direction
    planted_bases: int = 64  # base latents per direction of the planted generator (rendering is cheap)
    steps: int = 5  # coordinate values per base
    span: float = 2.0  # values run over [-span, span] latent stds
    n_samples: int = 256  # GANSpace PCA samples
    n_fit: int = 3000  # posters the factor regressor trains on (at most)
    epochs: int = 20  # regressor epochs
    min_r2: float = 0.5  # a regressed factor with a lower held-out R^2 is unreadable: no verdict
    min_corr: float = 0.6  # a direction "controls" a factor at |corr| >= this ...
    margin: float = 0.1  # ... and at least this much above the best of as many random directions


TINY = DirectionSettings(k=3, n_dims=6, n_bases=10, planted_bases=32, n_samples=64, n_fit=1000, epochs=8)


@dataclass
class DirectionSet:
    name: str  # "sefa", "ganspace", "dims"
    space: str  # "z" or "w" (StyleGAN-like models)
    directions: Tensor  # [k, dim] unit rows


def set_coordinate(bases: Tensor, direction: Tensor, values: Tensor) -> Tensor:
    """``[n * s, d]``: row ``i * s + j`` is base ``i`` with its coordinate along the unit ``direction`` set
    to ``values[j]`` (the component orthogonal to ``direction`` is kept)."""
    d = (direction / direction.norm()).to(bases)
    rest = bases - (bases @ d).unsqueeze(1) * d
    return (rest.unsqueeze(1) + values.to(bases).view(1, -1, 1) * d).reshape(-1, bases.shape[1])


def abs_corr(values: Tensor, readings: Tensor) -> Tensor:
    """``[F]`` ``|Pearson corr|`` of ``values [N]`` with each column of ``readings [N, F]`` (0 if one is constant)."""
    v = values.double() - values.double().mean()
    r = readings.double() - readings.double().mean(0)
    den = v.norm() * r.norm(dim=0)
    return torch.where(den > 1e-12, (v @ r).abs() / den.clamp_min(1e-300), torch.zeros_like(den))


def sweep_scores(
    observe: Callable[[Tensor], Tensor],  # latents [N, d] -> factor readings [N, F]
    bases: Tensor,  # [n, d] base latents
    directions: Tensor,  # [k, d]
    values: Tensor,  # [s] coordinate values along each direction
    alphas: Tensor,  # [s] the same values in latent stds (what the factor is correlated with)
) -> Tensor:
    """``[k, F]`` |corr| of each factor with the coordinate along each direction."""
    out = []
    for d in directions:
        with torch.no_grad():
            readings = observe(set_coordinate(bases, d, values))
        out.append(abs_corr(alphas.repeat(bases.shape[0]), readings))
    return torch.stack(out)


def direction_sets(model, s: DirectionSettings, seed: int) -> list[DirectionSet]:
    """SeFa, GANSpace (w for style models, else a generator layer's activations mapped to z) and single z dims."""
    weight, sefa_space = model.sefa_weight()
    _, sefa = sefa_directions(sefa_matrix(weight), s.k)
    pca_space = "w" if has_style_space(model) else "activations"
    ganspace, _, gs_space = ganspace_directions(model, pca_space, None, s.n_samples, s.k, seed)
    n_dims = model.latent_dim if s.n_dims is None else min(s.n_dims, model.latent_dim)
    return [
        DirectionSet("sefa", sefa_space, sefa),
        DirectionSet("ganspace", gs_space, ganspace),
        DirectionSet("dims", "z", torch.eye(model.latent_dim)[:n_dims]),
    ]


def _space_sweep(model, space: str, s: DirectionSettings, seed: int, direction: Tensor):
    """(render, bases, values) of a direction's space: z as is; w with the coordinate's mean and std."""
    z = fixed_z(model, s.n_bases, seed + 21).float().cpu()
    alphas = torch.linspace(-s.span, s.span, s.steps)
    if space == "z":
        return (lambda lat: generate_batched(model, lat.to(model.device), 256)), z, alphas
    with torch.no_grad():
        bases = model.mapping(z.to(model.device)).float().cpu()
        proj = model.mapping(fixed_z(model, 256, seed + 9)).float().cpu() @ (direction / direction.norm())
    render = lambda lat: torch.cat([model.synthesize(c.to(model.device)) for c in lat.split(256)])  # noqa: E731
    return render, bases, proj.mean() + alphas * proj.std()


def _reading(reader: FactorReader, render: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """latents -> factor readings of the rendered images."""
    return lambda lat: reader.read(render(lat).float().cpu())


def method_scores(model, reader: FactorReader, s: DirectionSettings, seed: int) -> dict[str, dict]:
    """Per direction set: ``{"space", "discovered": [k, F], "random": [k, F]}`` (random: same count and steps)."""
    if getattr(model, "n_members", 0):
        model = model.member_view(0)  # directions belong to one generator
    alphas = torch.linspace(-s.span, s.span, s.steps)
    out = {}
    for i, ds in enumerate(direction_sets(model, s, seed)):
        ctrl = random_directions(ds.directions.shape[0], ds.directions.shape[1], seeded(seed + 13 + i))
        scores = {}
        for tag, dirs in (("discovered", ds.directions), ("random", ctrl)):
            rows = []
            for d in dirs:
                render, bases, values = _space_sweep(model, ds.space, s, seed, d)
                rows.append(sweep_scores(_reading(reader, render), bases, d.view(1, -1), values, alphas)[0])
            scores[tag] = torch.stack(rows)
        out[ds.name] = {"space": ds.space, **scores}
    return out


def planted_scores(reader: FactorReader, s: DirectionSettings, resolution: int, seed: int) -> tuple[dict, dict]:
    """Single dims vs as many random directions of :class:`PlantedPosterGenerator`, factors read two ways:
    ``(exact, through the regressor)`` - exact: from the planted posters' own masks and factors."""
    planted = PlantedPosterGenerator(resolution)
    bases = fixed_z(planted, s.planted_bases, seed + 21)
    alphas = torch.linspace(-s.span, s.span, s.steps)
    n_f = len(reader.names)

    def observe(lat: Tensor) -> Tensor:  # [N, 2F]: exact readings, then the regressor's
        images, masks, factors = planted.render(lat)
        _, exact = factor_table(images, masks, factors, CONCEPTS, reader.regressed)
        return torch.cat([brightness(images).double().view(-1, 1), exact, reader.read(images)], 1)

    dims = torch.eye(planted.latent_dim)
    ctrl = random_directions(planted.latent_dim, planted.latent_dim, seeded(seed + 13))
    both = {tag: sweep_scores(observe, bases, d, alphas, alphas) for tag, d in (("discovered", dims), ("random", ctrl))}
    exact = {"dims": {"space": "z", **{k: v[:, :n_f] for k, v in both.items()}}}
    read = {"dims": {"space": "z", **{k: v[:, n_f:] for k, v in both.items()}}}
    return exact, read


def _best(scores: dict[str, dict], methods: tuple[str, ...], f: int, tag: str) -> tuple[float, str, int]:
    """Best |corr| of factor column ``f`` over ``methods``' ``tag`` directions: (value, method, index)."""
    best = (0.0, "-", -1)
    for m in methods:
        if m in scores and scores[m][tag].numel():
            col = scores[m][tag][:, f]
            j = int(col.argmax())
            if float(col[j]) > best[0]:
                best = (float(col[j]), m, j)
    return best


def _summary(scores: dict[str, dict] | None, names: tuple[str, ...]) -> dict:
    if scores is None:
        return {}
    return {
        m: {
            "space": v["space"],
            **{
                f: {
                    "best": float(v["discovered"][:, i].max()),
                    "best_index": int(v["discovered"][:, i].argmax()),
                    "random_best": float(v["random"][:, i].max()),
                }
                for i, f in enumerate(names)
            },
        }
        for m, v in scores.items()
    }


def _controls(best: float, rnd: float, s: DirectionSettings) -> bool:
    return best >= s.min_corr and best >= rnd + s.margin


def _planted_ok(planted: dict | None, names: tuple[str, ...], factor: str, s: DirectionSettings) -> bool | None:
    """Whether the planted dim of ``factor`` is the best dim and controls it (None: not planted / no planted run)."""
    if planted is None or factor not in PLANTED_DIMS:
        return None
    f = names.index(factor)
    value, _, j = _best(planted, ("dims",), f, "discovered")
    rnd = _best(planted, ("dims",), f, "random")[0]
    return j == PLANTED_DIMS[factor] and _controls(value, rnd, s)


def _cell(scores: dict | None, f: int, methods: tuple[str, ...], with_index: bool = False) -> str | None:
    if scores is None:
        return None
    value, _, j = _best(scores, methods, f, "discovered")
    rnd = _best(scores, methods, f, "random")[0]
    return f"{'dim ' + str(j) + ': ' if with_index else ''}{value:.2f} vs {rnd:.2f}"


def _readable(name: str, r2: dict[str, float] | None, s: DirectionSettings) -> bool:
    """Direct readings and exact (``r2=None``) ones always; regressed ones at held-out R^2 >= min_r2."""
    return r2 is None or name in DIRECT_FACTORS or r2.get(name, float("-inf")) >= s.min_r2


def _read_note(name: str, names, read: dict | None) -> str:
    """What the regressor makes of the planted factor (it confounds factors the real posters correlate)."""
    if read is None or name not in PLANTED_DIMS or name not in names:
        return ""
    value, _, j = _best(read, ("dims",), names.index(name), "discovered")
    if j == PLANTED_DIMS[name]:
        return ""
    return f"through the regressor the planted's best dim for {name} is {j} ({value:.2f}): the regressor confounds"


def factor_rows(names, r2, ref, rand, exact, read, s: DirectionSettings) -> list[ScoreRow]:
    """One row per factor: best SeFa/GANSpace |corr| vs as many random directions (planted: single dims, exact)."""
    rows = []
    disc = ("sefa", "ganspace")
    for f, name in enumerate(names):
        readable = _readable(name, r2, s)
        ref_best, rnd_best = _best(ref, disc, f, "discovered")[0], _best(ref, disc, f, "random")[0]
        planted_ok = _planted_ok(exact, names, name, s)
        ref_ok = ref_best >= rnd_best + s.margin
        how = "direct pixel reading" if name in DIRECT_FACTORS else f"regressor R^2 {r2.get(name, float('nan')):.2f}"
        criterion = f"readable (R^2 >= {s.min_r2}); reference: SeFa/GANSpace best >= best random + {s.margin}"
        if name in PLANTED_DIMS:
            criterion += (
                f"; planted: dim {PLANTED_DIMS[name]} is the best dim, >= {s.min_corr} and >= random + {s.margin}"
            )
        passed = None if not readable else bool(ref_ok and planted_ok is not False)
        note = "" if readable else f"unreadable: held-out R^2 {r2.get(name, float('nan')):.2f} < {s.min_r2}"
        if readable and not ref_ok:
            note = "the reference's SeFa/GANSpace directions move this factor no more than random directions"
        rows.append(
            ScoreRow(
                probe="directions",
                reading=f"best |corr| of {name} ({how}) with a direction: discovered vs random",
                reference=_cell(ref, f, disc),
                random_init=_cell(rand, f, disc),
                planted=_cell(exact, f, ("dims",), with_index=True),
                criterion=criterion,
                passed=passed,
                note="; ".join(filter(None, [note, _read_note(name, names, read)])),
                details={"r2": r2.get(name), "planted_dim": PLANTED_DIMS.get(name), "planted_ok": planted_ok},
            )
        )
    return rows


def _answer(scores: dict | None, names, r2, s: DirectionSettings) -> tuple[str | None, bool | None]:
    """Seed 000's question on one model: do single z dims control brightness or background colour?"""
    if scores is None:
        return None, None
    best = (-1.0, "", -1, 0.0)
    for f, name in enumerate(names):
        if name in QUESTION_FACTORS and _readable(name, r2, s):
            value, _, j = _best(scores, ("dims",), f, "discovered")
            if value > best[0]:
                best = (value, name, j, _best(scores, ("dims",), f, "random")[0])
    if best[2] < 0:
        return None, None
    yes = _controls(best[0], best[3], s)
    return f"{'yes' if yes else 'no'}: dim {best[2]} -> {best[1]} {best[0]:.2f} vs random {best[3]:.2f}", yes


def question_row(names, r2, ref, rand, exact, read, s: DirectionSettings) -> ScoreRow:
    """Seed 000's question: reference / random init answers, the planted's exact answer as the known case."""
    ref_cell, ref_yes = _answer(ref, names, r2, s)
    rand_cell, rand_yes = _answer(rand, names, r2, s)
    planted_cell, _ = _answer(exact, names, None, s)
    checks = [_planted_ok(exact, names, f, s) for f in QUESTION_FACTORS if f in names and f in PLANTED_DIMS]
    checks = [c for c in checks if c is not None]
    passed = None if exact is None or not checks else all(checks)
    answer = "unanswered (no readable brightness/colour factor)"
    if ref_yes is not None:
        answer = ("single z dims DO" if ref_yes else "single z dims do NOT") + (
            f" control brightness / background colour on the reference model (|corr| >= {s.min_corr} and "
            f">= as many random directions + {s.margin}); random init: {'yes' if rand_yes else 'no'}"
        )
    return ScoreRow(
        probe="directions",
        reading="seed 000: do single latent dims control brightness / background colour? (best dim vs random)",
        reference=ref_cell,
        random_init=rand_cell,
        planted=planted_cell,
        criterion=(
            f"planted: the gain dim {PLANTED_DIMS['brightness']} is the best dim for brightness and bg_luminance, "
            f"the hue dim {PLANTED_DIMS['bg_rg']} for bg_rg (each >= {s.min_corr}, >= random + {s.margin})"
        ),
        passed=passed,
        note="; ".join(filter(None, [f"answer: {answer}", *(_read_note(f, names, read) for f in QUESTION_FACTORS)])),
        details={"question_factors": list(QUESTION_FACTORS), "answer_reference": ref_yes, "answer_random": rand_yes},
    )


def check_directions(ref, rand, dm, *, seed: int = 0, tiny: bool = False) -> list[ScoreRow]:
    """Directions and per-dimension traversals vs ground-truth poster factors: one row per factor + seed 000's
    question. ``ref`` / ``rand``: trained and random-init models (CPU, eval); ``dm``: their data module."""
    s = TINY if tiny else DirectionSettings()
    t0 = time.perf_counter()
    reader = fit_factor_reader(dm, n_fit=s.n_fit, n_test=s.n_fit // 4, epochs=s.epochs, seed=seed)
    names, r2 = reader.names, reader.r2
    t_fit = time.perf_counter() - t0
    ref_scores = method_scores(ref, reader, s, seed)
    rand_scores = method_scores(rand, reader, s, seed)
    exact = read = None
    if getattr(dm, "channels", 3) == 3 and reader.regressed and dm.resolution in RESOLUTIONS:
        exact, read = planted_scores(reader, s, dm.resolution, seed)
    rows = [question_row(names, r2, ref_scores, rand_scores, exact, read, s)]
    rows += factor_rows(names, r2, ref_scores, rand_scores, exact, read, s)
    timing = {"regressor_s": t_fit, "total_s": time.perf_counter() - t0}
    summaries = {"reference": ref_scores, "random_init": rand_scores, "planted": exact, "planted_read": read}
    rows[0].details |= {"scores": {k: _summary(v, names) for k, v in summaries.items()}}
    for row in rows:
        row.details |= {"settings": asdict(s), "timing": timing}
    return rows
