"""Run a set of probes on a model: eval mode, seeding and output folders handled in one place.

``run_probes`` is what :class:`~gan_interp.callbacks.probe_callback.ProbeCallback` calls during
training and what the probe CLI calls on checkpoints. It

* puts the module in eval mode and restores every submodule's own train/eval flag afterwards;
* runs each probe under ``torch.no_grad()`` (probes that need input gradients - SmoothGrad,
  activation maximisation - enable them locally and never touch parameter gradients);
* reseeds torch/numpy/random with ``seed`` before every probe (results do not depend on which
  other probes ran) inside a forked RNG state, so training's random streams are unchanged;
* writes ``<out_dir>/<probe>/summary.json`` (the probe's returned dict plus ``time_s``) and
  ``<out_dir>/probes.json`` (all of them);
* optionally limits torch's intra-op CPU threads while probing (``num_threads``; the training
  callback uses 1): probes run small batches, where OpenMP hand-offs cost more than they save -
  on a busy 2-core machine a probe run was ~5x faster with one thread (see benchmarks/bench_probes.py).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from gan_interp.errors import ConfigError, GanInterpError
from gan_interp.probes.output import jsonable, write_json
from gan_interp.probes.registry import RUNNER_KEYS, check_probe_kwargs, get_probe

log = logging.getLogger(__name__)

SCHEDULE_KEYS = ("_target_", "epochs", "every_n_epochs", "on_train_end", "seed", "probes", "cpu_threads", "dirname")


def normalize_probes_cfg(probes_cfg: Mapping[str, Any] | DictConfig | None) -> dict[str, dict]:
    """``probe_name -> kwargs`` for the enabled probes (accepts the whole ``probes`` node too).

    An entry may be a mapping of kwargs (``enabled: false`` skips it), ``true``/``null`` (run with
    defaults) or ``false`` (skip).
    """
    if probes_cfg is None:
        return {}
    cfg = OmegaConf.to_container(probes_cfg, resolve=True) if isinstance(probes_cfg, DictConfig) else dict(probes_cfg)
    if "_target_" in cfg and isinstance(cfg.get("probes"), Mapping):
        cfg = dict(cfg["probes"])
    out: dict[str, dict] = {}
    for name, entry in cfg.items():
        if name in SCHEDULE_KEYS and not isinstance(entry, Mapping):
            continue
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
        out[str(name)] = {k: v for k, v in entry.items() if k not in RUNNER_KEYS}
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
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
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

    Config errors (unknown probe, unknown option) always raise; any other exception in a probe
    is logged and recorded as ``{"error": ...}`` unless ``strict``.
    """
    cfg = validate_probes_cfg(probes_cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    loggers = list(loggers)
    results: dict[str, dict] = {}
    with probe_mode(model), forked_rng(model), cpu_threads(model, num_threads):
        for name, kwargs in cfg.items():
            fn = get_probe(name)
            _seed_all(seed)
            start = time.perf_counter()
            try:
                with torch.no_grad():
                    summary = fn(model, datamodule, out_dir, loggers, step, seed, **kwargs)
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
            log.info("probe %s (epoch %d): %.2fs", name, epoch, summary["time_s"])
    write_json({"epoch": epoch, "step": step, "seed": seed, "probes": results}, out_dir / "probes.json")
    return results
