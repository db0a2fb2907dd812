"""Numbers as people read them: mean +/- sd, fixed or scientific notation, Markdown tables.

One formatter (:func:`fmt`) serves the study tables (``results.md``) and the HTML review page.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple


class MeanSD(NamedTuple):
    """A mean and a sample standard deviation (``results.json``: ``{"mean": .., "sd": ..}``)."""

    mean: float
    sd: float


def mean_sd(values: Iterable[float | None]) -> MeanSD:
    """Mean and sample standard deviation of the finite values (nan, nan if none; sd 0 for one)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return MeanSD(math.nan, math.nan)
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return MeanSD(m, sd)


def fmt(value: Any, digits: int = 3, significant: bool = False) -> str:
    """A number for people: ``digits`` decimals, scientific below ``10**-digits`` or from 1e4 on
    (``significant=True``: ``digits`` significant digits, ``%g``); :class:`MeanSD` as ``m ± sd``;
    NaN -> ``n/a``; anything else as ``str``."""
    if significant and isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.{digits}g}"
    if isinstance(value, MeanSD):
        m, sd = value
        if math.isnan(m):
            return "n/a"
        if m != 0 and (abs(m) >= 1e4 or abs(m) < 10**-digits):
            return f"{m:.2e} ± {sd:.1e}"
        return f"{m:.{digits}f} ± {sd:.{digits}f}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if value != 0 and (abs(value) >= 1e4 or abs(value) < 10**-digits):
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return str(value)


def md_table(rows: Sequence[dict[str, Any]], cols: Sequence[str], digits: int = 3) -> str:
    """A Markdown table of ``rows`` (dicts) with the given columns; MeanSD values print as m ± sd."""
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, ""), digits) for c in cols) + " |" for r in rows]
    return "\n".join(lines)
