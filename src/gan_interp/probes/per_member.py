"""Probes on every member of an ensemble: ``per_member: true`` among a probe's options (k-GAN).

The runner calls the probe on the whole model as usual and then, for a model with members
(``n_members > 0``), once more on each ``model.member_view(j)`` with the same options and seed (so
the same inputs): files in ``<probe>/m{j}/``, images logged as ``probes/<probe>/m{j}/<name>``, the
member's summary under ``per_member/<j>`` of the probe's ``summary.json`` and its readings as
``probes/<probe>/per_member/<j>/<reading>`` (layers named by the member's own stages). A member view
that lacks a requirement of the probe (e.g. ``members`` itself) records ``{"skipped": reason}``.
On models without members the option does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gan_interp.io import jsonable
from gan_interp.logging_utils import LogRow
from gan_interp.probes.context import ProbeContext
from gan_interp.probes.readings import probe_readings
from gan_interp.probes.registry import Probe
from gan_interp.probes.stages import layer_stages

PER_MEMBER = "per_member"  # the runner option, and the summary key of the members' summaries


def run_per_member(
    probe: Probe,  # the probe to run on every member
    options: dict[str, Any],  # its options (without the runner's own keys)
    model: Any,  # a model with n_members > 0
    datamodule: Any | None,
    out_dir: Path,  # the <run>/probes/epoch_XXX folder
    context: dict[str, Any],  # seed, step, epoch, loggers of the probe run (ProbeContext fields)
    row: LogRow | None,  # the probe run's row: the members' images and readings go there
    reseed: Callable[[int], None],  # reseeds every RNG (the runner's, before each member)
) -> dict[str, dict]:
    """``{"<j>": summary of the probe on member j}`` for every member; readings added to ``row``."""
    results: dict[str, dict] = {}
    for j in range(model.n_members):
        view = model.member_view(j)
        reason = probe.unmet(view, datamodule)
        if reason is not None:
            results[str(j)] = {"skipped": reason}
            continue
        reseed(context["seed"])
        stages = layer_stages(view)
        ctx = ProbeContext.create(f"{probe.name}/m{j}", view, datamodule, out_dir, row=row, stages=stages, **context)
        summary = dict(jsonable(probe.fn(ctx, **options) or {}))
        results[str(j)] = summary
        if row is not None:
            row.scalars(probe_readings(probe.name, {PER_MEMBER: {str(j): summary}}, stages))
    return results


__all__ = ["PER_MEMBER", "run_per_member"]
