"""The metrics as the scorecard checks read them: one :func:`evaluate` call, and the statistics of the controls.

:func:`run_metrics` evaluates one model (reference, random init or planted) against the data module's held-out
split with the project's own metrics (:mod:`gan_interp.metrics`); the domain feature net is cached in the data
module's cache folder, so every model and seed is compared in the same feature space.
:func:`uniformity` and :func:`null_z` turn the held-out sampler's readings over seeds (the null: a generator
that samples the real distribution) into a uniformity test of p-values and a z-score against the null spread.
"""

from __future__ import annotations

import math
from typing import Any

from scipy.stats import kstest

from gan_interp.metrics.runner import evaluate
from gan_interp.metrics.settings import MetricsSettings
from gan_interp.report.tables import mean_sd

TINY_DOMAIN = {"steps": 100}  # the domain feature net in tiny mode (one setting, so every check shares one cached net)


def run_metrics(
    model: Any,  # a GANModule or a planted generator
    dm: Any,  # the set-up GANDataModule
    metrics: dict[str, dict],  # metric name -> options (MetricsSettings.metrics)
    n: int,  # generated (and held-out real) images
    seed: int,  # latents, real subset, permutations, classifiers
    domain: dict[str, Any] | None = None,  # domain feature-net settings (steps, dim, ...)
    real_split: str = "test",  # the held-out reals the fakes are compared with
) -> dict[str, float]:
    """``evaluate(...).values`` plus ``n_real`` (the held-out reals compared), features ``domain``."""
    settings = MetricsSettings(
        metrics=metrics,
        n=n,
        features="domain",
        cache_dir=str(dm.cache_dir),
        real_split=real_split,
        seed=seed,
        domain=domain,
    )
    result = evaluate(model, dm, settings)
    return {**result.values, "n_real": float(result.info.get("n_real", 0))}


def uniformity(p_values: list[float]) -> float:
    """Kolmogorov-Smirnov p-value of ``p_values`` against U(0, 1) (nan for an empty list)."""
    ps = [p for p in p_values if p is not None and math.isfinite(p)]
    return float(kstest(ps, "uniform").pvalue) if ps else float("nan")


def null_z(value: float, null: list[float], higher_is_worse: bool = True) -> float:
    """How many null standard deviations ``value`` lies beyond the null mean, in the bad direction."""
    m, sd = mean_sd(null)
    if math.isnan(m) or not math.isfinite(value):
        return math.nan
    sd = 0.0 if math.isnan(sd) else sd
    diff = (value - m) if higher_is_worse else (m - value)
    if diff == 0:
        return 0.0
    return diff / sd if sd > 0 else math.copysign(math.inf, diff)
