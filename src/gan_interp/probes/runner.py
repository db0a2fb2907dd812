"""Run a set of probes on a model: eval mode, seeding and output folders handled in one place.

``run_probes`` is what :class:`~gan_interp.callbacks.probe_callback.ProbeCallback` calls during
training and what the probe CLI calls on checkpoints. It

* puts the module in eval mode and restores every submodule's own train/eval flag afterwards;
* runs each probe under ``torch.no_grad()`` (probes that need input gradients - SmoothGrad,
  activation maximisation - enable them locally and never touch parameter gradients);
* reseeds torch/numpy/random with ``seed`` before every probe (results do not depend on which
  other probes ran) inside a forked RNG state, so training's random streams are unchanged;
* skips a probe whose requirements (:data:`~gan_interp.probes.registry.REQUIREMENTS`) the model or
  data lack: it is not called, gets no folder, and its reason goes to ``probes.json`` (``skipped``)
  and to one info log line;
* gives every probe a :class:`~gan_interp.probes.context.ProbeContext` whose ``out`` writes into
  ``<out_dir>/<probe>/``; with ``per_member: true`` among its options, a model with members (k-GAN)
  is also probed member by member (:mod:`gan_interp.probes.per_member`);
* writes ``<out_dir>/<probe>/summary.json`` (the probe's returned dict plus ``time_s``) and
  ``<out_dir>/probes.json`` (all of them, and the skipped probes with their reasons);
* logs the whole run as one row (:class:`~gan_interp.logging_utils.LogRow`, at ``epoch``): every
  probe's images and tables, its numeric readings as ``probes/<probe>/<reading>``
  (:mod:`gan_interp.probes.readings`; layers named by stage, :mod:`gan_interp.probes.stages`) and
  the run's wall time ``probes/time_s``;
* optionally limits torch's intra-op CPU threads while probing (``num_threads``; the training
  callback uses 1): probes run small batches, where OpenMP hand-offs cost more than they save -
  on a busy 2-core machine a probe run was ~5x faster with one thread (see benchmarks/bench_probes.py).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from gan_interp.errors import ConfigError, GanInterpError
from gan_interp.io import jsonable, write_json
from gan_interp.logging_utils import LogRow
from gan_interp.probes.context import ProbeContext
from gan_interp.probes.per_member import PER_MEMBER, run_per_member
from gan_interp.probes.readings import probe_readings
from gan_interp.probes.registry import check_probe_kwargs, get_probe
from gan_interp.probes.stages import layer_stages

log = logging.getLogger(__name__)

# keys of a whole probes config node besides its ``probes`` map (never probe names)
NODE_KEYS = ("_target_", "schedule", "seed", "cpu_threads", "dirname")


def _probe_entries(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``{probe: options}`` map of a bare map or of a whole node holding a ``probes:`` map."""
    if "probes" in cfg and (cfg["probes"] is None or isinstance(cfg["probes"], Mapping)):
        return dict(cfg["probes"] or {})
    return {name: entry for name, entry in cfg.items() if name not in NODE_KEYS}


def normalize_probes_cfg(probes_cfg: Mapping[str, Any] | DictConfig | None) -> dict[str, dict]:
    """``probe_name -> kwargs`` for the enabled probes (accepts the whole ``probes`` node too).

    An entry may be a mapping of kwargs (``enabled: false`` skips it), ``true``/``null`` (run with
    defaults) or ``false`` (skip). Of a whole node (one with a ``probes:`` map) only that map counts.
    """
    if probes_cfg is None:
        return {}
    cfg = OmegaConf.to_container(probes_cfg, resolve=True) if isinstance(probes_cfg, DictConfig) else dict(probes_cfg)
    out: dict[str, dict] = {}
    for name, entry in _probe_entries(cfg).items():
        if entry is False:
            continue
        if entry is None or entry is True:
            entry = {}
        if isinstance(entry, DictConfig):
            entry = OmegaConf.to_container(entry, resolve=True)
        if not isinstance(entry, Mapping):
            raise ConfigError(f"probes.{name}={entry!r} must be a mapping of probe options (or true/false)")
        if not entry.get("enabled", True):
            continue
        out[str(name)] = {k: v for k, v in entry.items() if k != "enabled"}  # per_member: read by run_probes
    return out


def validate_probes_cfg(probes_cfg: Mapping[str, Any] | DictConfig | None) -> dict[str, dict]:
    """Normalise and check probe names and option names (one-line :class:`ConfigError`)."""
    cfg = normalize_probes_cfg(probes_cfg)
    for name, kwargs in cfg.items():
        check_probe_kwargs(name, kwargs)
    return cfg


@contextlib.contextmanager
def probe_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the duration; every submodule's own training flag is restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def cpu_threads(model: nn.Module, num_threads: int | None) -> Iterator[None]:
    """Use ``num_threads`` intra-op threads for the duration when the model is on the CPU."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    previous = torch.get_num_threads()
    change = num_threads is not None and device.type == "cpu" and int(num_threads) != previous
    if change:
        torch.set_num_threads(max(1, int(num_threads)))
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(previous)


@contextlib.contextmanager
def forked_rng(model: nn.Module) -> Iterator[None]:
    """Save and restore torch (CPU + the model's CUDA device), numpy and ``random`` states."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def run_probes(
    model: nn.Module,
    datamodule: Any,
    probes_cfg: Mapping[str, Any] | DictConfig,
    out_dir: Path,
    epoch: int,
    loggers: Iterable = (),
    step: int = 0,
    seed: int = 0,
    *,
    strict: bool = False,  # re-raise a failing probe (tests); otherwise log it and go on
    num_threads: int | None = None,  # intra-op CPU threads while probing (None = unchanged)
) -> dict[str, dict]:
    """Run every enabled probe into ``out_dir`` (``<run>/probes/epoch_XXX``); JSON-able summaries by name.

    Probes whose requirements fail are skipped (not in the result; listed in ``probes.json``).
    Config errors (unknown probe, unknown option) always raise; any other exception in a probe
    is logged and recorded as ``{"error": ...}`` unless ``strict``. Everything logged goes to
    ``loggers`` in one row at ``epoch`` (``g_steps`` from the model).
    """
    cfg = validate_probes_cfg(probes_cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    loggers = tuple(loggers)
    g_steps = getattr(model, "g_steps", None)
    row = LogRow(epoch, None if g_steps is None else int(g_steps), step)
    results: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    start_all = time.perf_counter()
    with probe_mode(model), forked_rng(model), cpu_threads(model, num_threads):
        stages = layer_stages(model)
        for i, (name, kwargs) in enumerate(cfg.items(), 1):
            probe = get_probe(name)
            reason = probe.unmet(model, datamodule)
            if reason is not None:
                skipped[name] = reason
                continue
            _seed_all(seed)
            log.info("probe %s (epoch %d, %d/%d): started", name, epoch, i, len(cfg))
            start = time.perf_counter()
            options = {k: v for k, v in kwargs.items() if k != PER_MEMBER}
            try:
                ctx = ProbeContext.create(name, model, datamodule, out_dir, seed, step, epoch, loggers, row, stages)
                with torch.no_grad():
                    summary = probe.fn(ctx, **options)
                    if kwargs.get(PER_MEMBER) and getattr(model, "n_members", 0):  # the probe on every member too
                        context = {"seed": seed, "step": step, "epoch": epoch, "loggers": loggers}
                        members = run_per_member(probe, options, model, datamodule, out_dir, context, row, _seed_all)
                        summary = {**(summary or {}), PER_MEMBER: members}
            except GanInterpError:
                raise
            except Exception as exc:
                if strict:
                    raise
                log.exception("probe %s failed at epoch %d", name, epoch)
                summary = {"error": f"{type(exc).__name__}: {exc}"}
            summary = dict(jsonable(summary or {}))
            summary["time_s"] = time.perf_counter() - start
            write_json(summary, out_dir / name / "summary.json")
            results[name] = summary
            readings = {key: value for key, value in summary.items() if key != PER_MEMBER}  # members: logged above
            row.scalars(probe_readings(name, readings, stages))
            log.info("probe %s (epoch %d): %.2fs", name, epoch, summary["time_s"])
    if skipped:
        log.info("probes skipped (epoch %d): %s", epoch, "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    record = {"epoch": epoch, "step": step, "seed": seed, "probes": results, "skipped": skipped}
    write_json(record, out_dir / "probes.json")
    if results:
        row.scalars({"probes/time_s": time.perf_counter() - start_all})
    row.log(loggers)
    return results
