"""Two-sample metrics scored against planted controls (issue 12 point 2): :func:`check_two_sample`.

Every reading compares generated images with held-out real posters (the data module's ``test`` split), with
the project's metrics (:mod:`gan_interp.metrics`): C2ST and MMD as ``metrics=default`` reads them (an MLP on
16x16 pooled pixels; an RBF MMD on the same pixels with a permutation test), FID, KID and precision / recall /
density / coverage on the domain features (as ``metrics=all``), and which concept is missing or in excess
(:mod:`gan_interp.scorecard.concepts`).

Controls (:mod:`gan_interp.scorecard.planted`):

* the held-out sampler, evaluated under ``seeds`` seeds, is the null: C2ST and MMD must not flag it, i.e. its
  p-values are uniform (Kolmogorov-Smirnov p >= 0.05); its FID/KID/PRDC values give each metric's null mean and
  spread; no concept may be named missing or in excess;
* the no-orb sampler must be flagged: C2ST and MMD p < 0.01; FID, KID, recall and coverage at least 3 null sd
  beyond the null mean in the bad direction, while precision and density must not flag it (they measure
  fidelity, and every no-orb poster is a realistic poster); the concept reading names ``orb`` (and only
  ``orb``) as missing.

The reference model and its random init are read the same way (their cells: the value and whether it is
flagged); they decide no pass.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from gan_interp.dissect.segmenter import trained_segmenter
from gan_interp.report.tables import fmt, mean_sd
from gan_interp.scorecard.concepts import ConceptShift, model_concept_shift
from gan_interp.scorecard.metric_runs import TINY_DOMAIN, null_z, run_metrics, uniformity
from gan_interp.scorecard.planted import heldout_sampler, no_orb_sampler
from gan_interp.scorecard.rows import ScoreRow

PROBE = "two-sample"
ALPHA = 0.01  # a planted difference is flagged at p < ALPHA
UNIFORM_ALPHA = 0.05  # the null's p-values count as uniform at KS p >= UNIFORM_ALPHA
Z_FLAG = 3.0  # a value without a p-value is flagged Z_FLAG null sd beyond the null mean
P_METRICS = (  # (label, p-value key, statistic key)
    ("C2ST (pooled pixels)", "c2st_p_value", "c2st_accuracy"),
    ("MMD (pooled pixels)", "mmd_p_value", "mmd2"),
)
NULL_METRICS = (  # (label, key, higher is worse, the no-orb sampler must be flagged)
    ("FID (domain)", "fid", True, True),
    ("KID (domain)", "kid_mean", True, True),
    # fidelity: every no-orb poster is a realistic poster, so precision and density must NOT flag it ...
    ("precision (domain, k=3)", "prdc_precision", False, False),
    ("density (domain, k=5)", "prdc_density", False, False),
    # ... diversity: the orb posters are never drawn, so recall and coverage must
    ("recall (domain, k=3)", "prdc_recall", False, True),
    ("coverage (domain, k=5)", "prdc_coverage", False, True),
)


@dataclass(frozen=True)
class TwoSampleSettings:
    """Sample sizes and metric options of the check (:data:`FULL`, :data:`TINY`)."""

    n: int  # generated and held-out real images per evaluation
    seeds: int  # held-out sampler seeds (the null)
    c2st: dict[str, Any]  # c2st metric options
    mmd: dict[str, Any]  # mmd metric options
    kid_subset_size: int  # KID subset size (capped by the reals compared)
    domain: dict[str, Any] = field(default_factory=dict)  # domain feature net settings
    segmenter: dict[str, Any] = field(default_factory=dict)  # trained_segmenter settings

    def metrics(self, n_real: int) -> dict[str, dict]:
        kid = {"subset_size": max(2, min(self.kid_subset_size, n_real))}
        return {"c2st": self.c2st, "mmd": self.mmd, "fid": {}, "kid": kid, "prdc": {}}


FULL = TwoSampleSettings(
    n=512,
    seeds=10,
    c2st={"space": "pixels", "epochs": 8},
    mmd={"space": "pixels", "n_permutations": 200},
    kid_subset_size=256,
)
TINY = TwoSampleSettings(
    n=128,
    seeds=3,
    c2st={"space": "pixels", "epochs": 1, "min_steps": 100},
    mmd={"space": "pixels", "n_permutations": 100},
    kid_subset_size=64,
    domain=TINY_DOMAIN,
    segmenter={"steps": 200, "width": 16, "max_train": 512},
)


def _p_cell(values: dict[str, float], p_key: str, stat_key: str) -> str:
    p = values[p_key]
    return f"p={fmt(p, 2, significant=True)} ({stat_key} {fmt(values[stat_key], 3, significant=True)})" + (
        ", flagged" if p < ALPHA else ""
    )


def p_value_rows(read: dict[str, dict], null: list[dict], s: TwoSampleSettings) -> list[ScoreRow]:
    """Per C2ST / MMD: the held-out sampler's p's are uniform; the no-orb sampler's p < ALPHA."""
    rows = []
    for label, p_key, stat_key in P_METRICS:
        ref, rand = _p_cell(read["reference"], p_key, stat_key), _p_cell(read["random init"], p_key, stat_key)
        ps = [v[p_key] for v in null]
        ks = uniformity(ps)
        rows.append(
            ScoreRow(
                PROBE,
                f"{label} p vs held-out reals; planted: held-out sampler, {len(ps)} seeds",
                ref,
                rand,
                f"KS p={fmt(ks, 2, significant=True)}; p's {', '.join(fmt(p, 2, significant=True) for p in ps)}",
                f"held-out sampler not flagged: its p's uniform over seeds (KS p >= {UNIFORM_ALPHA})",
                bool(ks >= UNIFORM_ALPHA),
                details={"null_p_values": ps, "ks_p": ks, "null_statistics": [v[stat_key] for v in null]},
            )
        )
        p_noorb = read["no-orb"][p_key]
        rows.append(
            ScoreRow(
                PROBE,
                f"{label} p vs held-out reals; planted: no-orb sampler",
                ref,
                rand,
                _p_cell(read["no-orb"], p_key, stat_key),
                f"no-orb sampler flagged: p < {ALPHA}",
                bool(p_noorb < ALPHA),
                note="" if p_noorb < ALPHA else f"a missing orb is not detected at n={s.n}",
                details={"no_orb": read["no-orb"][p_key], "no_orb_statistic": read["no-orb"][stat_key]},
            )
        )
    return rows


def _z_cell(value: float, z: float) -> str:
    flag = ", flagged" if z >= Z_FLAG else ""
    return f"{fmt(value, 3, significant=True)} (z={fmt(z, 2, significant=True)}{flag})"


def null_spread_rows(read: dict[str, dict], null: list[dict]) -> list[ScoreRow]:
    """Per FID / KID / PRDC: is the no-orb sampler >= Z_FLAG null sd beyond the held-out null (badwards)?

    FID, KID, recall and coverage must flag it (the orb posters are missing); precision and density must not
    (Kynkaanniemi et al. 2019, Naeem et al. 2020: they measure fidelity, and every no-orb poster is realistic).
    """
    rows = []
    for label, key, worse_up, must_flag in NULL_METRICS:
        values = [v[key] for v in null]
        m, sd = mean_sd(values)
        z = {who: null_z(read[who][key], values, worse_up) for who in read}
        direction = "higher" if worse_up else "lower"
        flagged = bool(z["no-orb"] >= Z_FLAG)
        if must_flag:
            criterion = f"no-orb sampler flagged: >= {Z_FLAG:g} null sd {direction} than the held-out sampler's mean"
            note = "" if flagged else f"{label} does not separate a missing orb from the null"
        else:
            criterion = f"no-orb sampler not flagged (all its posters are realistic): < {Z_FLAG:g} null sd {direction}"
            note = f"{label} flags a generator whose every image is realistic" if flagged else ""
        rows.append(
            ScoreRow(
                PROBE,
                f"{label} vs held-out reals (null: held-out sampler {fmt(m, 3, significant=True)} ± "
                f"{fmt(sd, 2, significant=True)} over {len(values)} seeds); planted: no-orb sampler",
                _z_cell(read["reference"][key], z["reference"]),
                _z_cell(read["random init"][key], z["random init"]),
                _z_cell(read["no-orb"][key], z["no-orb"]),
                criterion,
                flagged == must_flag,
                note=note,
                details={"null": values, "z": z, "values": {who: read[who][key] for who in read}},
            )
        )
    return rows


def concept_rows(shifts: dict[str, ConceptShift], null: list[ConceptShift], alpha: float = ALPHA) -> list[ScoreRow]:
    """The missing-concept reading: nothing for the held-out sampler, exactly ``orb`` missing for no-orb."""
    reading = "missing / excess concept: segmented concept areas vs held-out reals (Mann-Whitney, Bonferroni)"
    flagged_seeds = sum(bool(c.missing or c.excess) for c in null)
    allowed = len(null) // 10
    noorb = shifts["no-orb"]
    detail = {who: dataclasses.asdict(c) for who, c in shifts.items()}
    return [
        ScoreRow(
            PROBE,
            f"{reading}; planted: held-out sampler, {len(null)} seeds",
            shifts["reference"].summary(),
            shifts["random init"].summary(),
            f"concepts flagged in {flagged_seeds}/{len(null)} seeds",
            f"held-out sampler: no concept flagged (corrected p < {alpha}) in more than {allowed} seed(s)",
            flagged_seeds <= allowed,
            details={"null": [dataclasses.asdict(c) for c in null], **detail},
        ),
        ScoreRow(
            PROBE,
            f"{reading}; planted: no-orb sampler",
            shifts["reference"].summary(),
            shifts["random init"].summary(),
            noorb.summary() + f" (p={fmt(noorb.p_value.get('orb', math.nan), 2, significant=True)})",
            f"no-orb sampler: orb, and only orb, named missing (corrected p < {alpha})",
            noorb.missing == ["orb"],
            details=detail,
        ),
    ]


def check_two_sample(ref: Any, rand: Any, dm: Any, *, seed: int = 0, tiny: bool = False) -> list[ScoreRow]:
    """C2ST, MMD, FID, KID, precision/recall/density/coverage and the missing-concept reading (module doc)."""
    s = TINY if tiny else FULL
    dm.setup()
    n_real = min(s.n, len(dm.split.get("test") or ()))
    metrics = s.metrics(n_real)
    models = {"reference": ref, "random init": rand, "no-orb": no_orb_sampler(dm, ref.latent_dim)}
    held = heldout_sampler(dm, ref.latent_dim)
    read = {who: run_metrics(m, dm, metrics, s.n, seed, s.domain) for who, m in models.items()}
    null = [run_metrics(held, dm, metrics, s.n, seed + i, s.domain) for i in range(s.seeds)]
    segmenter = trained_segmenter(dm, dm.cache_dir, seed=seed, **s.segmenter)
    shifts = {who: model_concept_shift(m, dm, segmenter, s.n, seed) for who, m in models.items()}
    null_shifts = [model_concept_shift(held, dm, segmenter, s.n, seed + i) for i in range(s.seeds)]
    rows = [*p_value_rows(read, null, s), *null_spread_rows(read, null), *concept_rows(shifts, null_shifts)]
    same_reals = len(dm.split["test"]) <= s.n  # every seed then reads the whole split
    for row in rows:
        row.details.update({"n": s.n, "n_real": n_real, "seeds": s.seeds, "segmenter": segmenter.metrics.get("val")})
        if same_reals:
            row.note = (row.note + "; " if row.note else "") + (
                f"the test split has {len(dm.split['test'])} posters: every seed compares with the same reals"
            )
    return rows
