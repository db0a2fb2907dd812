"""Memorisation and nearest-neighbour readings scored against planted controls: :func:`check_memorisation`.

Two readings, both the project's own:

* the ``memorisation`` metric (:mod:`gan_interp.metrics.memorisation`): ``nn_ratio`` (median distance of the
  fakes to their nearest training image over that of held-out reals; about 1 when sampling the distribution,
  towards 0 when copying) and ``copy_fraction`` (share of fakes much closer to one training image than to the
  next; about its 0.05 quantile when not copying, towards 1 when copying), in pooled pixels and in the domain
  features;
* the ``neighbours`` probe (:mod:`gan_interp.probes.neighbours`): ``gen_over_val``, the mean pixel distance of
  generated images to their nearest training image over that of validation images.

A reading *flags* a generator as memorising when ``copy_fraction >= 0.5`` or ``nn_ratio <= 0.5`` (the probe:
``gen_over_val <= 0.5``). Criterion: the memoriser (training images + small noise) is flagged, the held-out
sampler (fresh posters) and the reference model are not.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gan_interp.probes.context import ProbeContext
from gan_interp.probes.neighbours import neighbours_probe
from gan_interp.probes.stages import StageNames
from gan_interp.report.tables import fmt
from gan_interp.scorecard.metric_runs import TINY_DOMAIN, run_metrics
from gan_interp.scorecard.planted import DEFAULT_NOISE_STD, heldout_sampler, memoriser
from gan_interp.scorecard.rows import ScoreRow

PROBE = "memorisation"
COPY_FLAG = 0.5  # flagged: copy_fraction >= COPY_FLAG ...
RATIO_FLAG = 0.5  # ... or nn_ratio (gen_over_val) <= RATIO_FLAG
SPACES = (("pooled pixels", "pixels"), ("domain features", "features"))


@dataclass(frozen=True)
class MemorisationSettings:
    """Sample sizes of the check (:data:`FULL`, :data:`TINY`)."""

    n: int  # generated images for the memorisation metric
    probe_n: int  # generated queries of the neighbours probe
    probe_baseline: int  # validation images of the probe's baseline
    noise_std: float = DEFAULT_NOISE_STD  # the memoriser's pixel noise
    domain: dict[str, Any] = field(default_factory=dict)  # domain feature net settings


FULL = MemorisationSettings(n=512, probe_n=64, probe_baseline=64)
TINY = MemorisationSettings(n=128, probe_n=16, probe_baseline=32, domain=TINY_DOMAIN)


def metric_flagged(values: dict[str, float]) -> bool:
    """Whether the memorisation metric flags a generator (see module doc)."""
    return values["nn_copy_fraction"] >= COPY_FLAG or values["nn_ratio"] <= RATIO_FLAG


def _metric_cell(values: dict[str, float]) -> str:
    ratio, copy = fmt(values["nn_ratio"], 3, significant=True), fmt(values["nn_copy_fraction"], 2, significant=True)
    return f"{ratio} / {copy}" + (" (flagged)" if metric_flagged(values) else "")


def _probe_cell(ratio: float) -> str:
    return fmt(ratio, 3, significant=True) + (" (flagged)" if ratio <= RATIO_FLAG else "")


def probe_gen_over_val(model: Any, dm: Any, s: MemorisationSettings, seed: int) -> float:
    """The neighbours probe's ``gen_over_val`` (pixel space), its files written to a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        ctx = ProbeContext.create("neighbours", model, dm, Path(tmp), seed=seed, stages=StageNames())
        summary = neighbours_probe(ctx, n=s.probe_n, k=1, spaces=["pixel"], n_baseline=s.probe_baseline)
    return float(summary["pixel"]["gen_over_val"])


def _verdict(flags: dict[str, bool]) -> tuple[bool, str]:
    """Pass when only the memoriser is flagged; the note names what went wrong."""
    wrong = [w for w, f in flags.items() if f != (w == "memoriser") and w != "random init"]
    return not wrong, "; ".join(f"{w} {'flagged' if flags[w] else 'not flagged'}" for w in wrong)


def check_memorisation(ref: Any, rand: Any, dm: Any, *, seed: int = 0, tiny: bool = False) -> list[ScoreRow]:
    """The memorisation metric (pixels, domain features) and the neighbours probe on all four generators."""
    s = TINY if tiny else FULL
    dm.setup()
    models = {
        "reference": ref,
        "random init": rand,
        "memoriser": memoriser(dm, ref.latent_dim, s.noise_std),
        "held-out sampler": heldout_sampler(dm, ref.latent_dim),
    }
    criterion = "memoriser flagged; held-out sampler and reference not"
    rows = []
    for label, space in SPACES:
        metrics = {"memorisation": {"space": space}}
        read = {who: run_metrics(m, dm, metrics, s.n, seed, s.domain) for who, m in models.items()}
        passed, note = _verdict({who: metric_flagged(v) for who, v in read.items()})
        rows.append(
            ScoreRow(
                PROBE,
                f"nn_ratio / copy_fraction ({label}); planted: memoriser (train + noise {s.noise_std:g}); held-out",
                _metric_cell(read["reference"]),
                _metric_cell(read["random init"]),
                f"memoriser {_metric_cell(read['memoriser'])}; held-out {_metric_cell(read['held-out sampler'])}",
                f"{criterion} (flagged: copy_fraction >= {COPY_FLAG:g} or nn_ratio <= {RATIO_FLAG:g})",
                passed,
                note=note,
                details={"n": s.n, "values": read},
            )
        )
    ratios = {who: probe_gen_over_val(m, dm, s, seed) for who, m in models.items()}
    passed, note = _verdict({who: r <= RATIO_FLAG for who, r in ratios.items()})
    rows.append(
        ScoreRow(
            "neighbours",
            "gen_over_val (pixel L2 to nearest training image, generated / validation); planted: memoriser; held-out",
            _probe_cell(ratios["reference"]),
            _probe_cell(ratios["random init"]),
            f"memoriser {_probe_cell(ratios['memoriser'])}; held-out {_probe_cell(ratios['held-out sampler'])}",
            f"{criterion} (flagged: gen_over_val <= {RATIO_FLAG:g})",
            passed,
            note=note,
            details={"n": s.probe_n, "n_baseline": s.probe_baseline, "gen_over_val": ratios},
        )
    )
    return rows
