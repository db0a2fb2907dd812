"""A probe's numeric readings as flat scalars: ``probes/<probe>/<reading>``, the same names for every model.

:func:`probe_readings` turns the summary a probe returns (what ``summary.json`` holds) into scalars:

* nested keys are joined with ``/`` (``saliency`` ``{"real": {"center_mass_share": x}}`` ->
  ``probes/saliency/real/center_mass_share``); a key holding ``/`` (``"G/block1"``) is split the same way;
* a number is logged as is; a list of numbers (any nesting: per-direction effects, a CKA matrix,
  per-channel activations) is logged as its mean, under ``<key>/mean`` - lists differ in length
  between architectures, their mean does not;
* strings, booleans, missing values (NaN is stored as null) and empty lists are skipped, and so
  are leaves named in :data:`BOOKKEEPING` - settings, counts and ids that describe the run rather
  than measure the model (``n``, ``k``, ``channels``, ``train_rows``, ``alphas``, ...); a *dict*
  under such a name is still walked (dissection's ``quantile`` holds readings);
* layers are named by stage, not module (:mod:`gan_interp.probes.stages`): a ``G``/``D`` key
  followed by one of that side's layers becomes one segment (``layers/G/block1/mean`` ->
  ``layers/G_8px/mean``);
* every other segment is made W&B-safe (:func:`~gan_interp.probes.stages.safe_key`: ``.`` and spaces -> ``_``);
* the probe's wall time stays: ``probes/<probe>/time_s``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from gan_interp.probes.stages import StageNames, safe_key

PREFIX = "probes"

# leaves that are settings, counts or ids, not readings of the model (skipped wherever they occur)
BOOKKEEPING = frozenset(
    {
        "n",
        "k",
        "nt_samples",
        "stdevs",
        "similar_noise",
        "channels",
        "epoch",
        "dims",
        "values",
        "alphas",
        "member",
        "num_ws",
        "history",
        "steps",
        "weight_shape",
        "n_refs",
        "train_rows",
        "medoid_index",
        "n_units",
        "interpretable_iou",
    }
)


def _numbers(value: Any) -> Iterator[float]:
    """Every finite number in a (nested) list; raises TypeError at anything else."""
    for v in value:
        if isinstance(v, list):
            yield from _numbers(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            if math.isfinite(v):
                yield float(v)
        elif v is not None:
            raise TypeError(f"not a number: {v!r}")


def _leaf(value: Any) -> tuple[str, float] | None:
    """(key suffix, scalar) of one leaf, or None when it is not a reading."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    if isinstance(value, (int, float)):
        return ("", float(value)) if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        try:
            nums = list(_numbers(list(value)))
        except TypeError:
            return None
        return ("mean", sum(nums) / len(nums)) if nums else None
    return None


def _walk(node: Mapping[str, Any], path: list[str]) -> Iterator[tuple[list[str], float]]:
    for key, value in node.items():
        sub = [*path, *str(key).split("/")]
        if isinstance(value, Mapping):
            yield from _walk(value, sub)
            continue
        if str(key) in BOOKKEEPING:
            continue
        leaf = _leaf(value)
        if leaf is not None:
            suffix, number = leaf
            yield ([*sub, suffix] if suffix else sub), number


def probe_readings(probe: str, summary: Mapping[str, Any], stages: StageNames | None = None) -> dict[str, float]:
    """``{"probes/<probe>/<reading>": value}`` of one probe's summary (see the module doc for the rules)."""
    stages = stages or StageNames()
    out: dict[str, float] = {}
    for path, value in _walk(summary, []):
        segments = [safe_key(s) for s in stages.rename(path)]
        out["/".join([PREFIX, safe_key(probe), *segments])] = value
    return out


__all__ = ["BOOKKEEPING", "probe_readings"]
