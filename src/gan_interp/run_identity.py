"""Who a training job is in W&B: its run name, tags and group (no torch import: cheap to use anywhere).

* name: ``run_name`` (default ``<model>-<data>-s<seed>``) followed by the job's swept overrides that
  the name does not show yet, e.g. ``dcgan-fake-s0 model.lr=0.0001``;
* tags: ``tags`` plus ``seed=<seed>`` and every swept override of the job (``model=kgan``);
* group: ``group`` when set (the study scripts set ``<study>-<time>``); in a multirun
  ``<sweep>-<time>``: the sweep named by its experiment (``experiment=arch_compare``), its
  ``hparams_search`` or else its sweep overrides (``model:dcgan,kgan seed:0,1``), the time of its launch
  as the suffix; a single run: its name.

The sweep overrides are read from Hydra: ``hydra.sweeper.params`` and the command line's sweep
overrides (the sweep's ``multirun.yaml``, written by the sweeper before any job starts).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

TAG_MAX = 64  # W&B's tag length limit
GROUP_LABEL_MAX = 100  # W&B groups hold up to 128 characters; the time suffix takes the rest


@dataclass(frozen=True)
class RunIdentity:
    name: str  # W&B run name
    group: str  # W&B group
    tags: tuple[str, ...]  # W&B tags


def _key(override: str) -> str:
    """``+model.lr=1`` -> ``model.lr``."""
    return override.split("=", 1)[0].lstrip("+~")


@dataclass(frozen=True)
class Sweep:
    """What a multirun sweeps: ``spec`` the overrides with their choices (``seed=0,1``), ``label`` its name."""

    spec: tuple[str, ...]  # e.g. ("model=dcgan,kgan", "seed=0,1")
    label: str  # experiment / hparams_search name, else the spec joined by spaces
    stamp: str  # when the sweep was launched (%Y%m%d-%H%M%S), or the sweep folder's name

    @property
    def keys(self) -> set[str]:
        return {_key(o) for o in self.spec}


def _command_line_sweeps(sweep_dir: Path) -> tuple[list[str], float | None]:
    """The command line's sweep overrides (``seed=0,1``) from ``multirun.yaml``, and that file's mtime."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return [], None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    task = list(OmegaConf.load(path).hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(task)
    return [line for line, o in zip(task, parsed) if o.is_sweep_override()], path.stat().st_mtime


def group_label(spec: list[str]) -> str:
    """A sweep's overrides as a group name: ``model:dcgan,kgan seed:0,1`` (``=<>!'"`` would break W&B's run
    filters: wandb-workspaces rewrites a ``=`` inside a filter value as ``==``)."""
    text = " ".join(o.replace("=", ":", 1) for o in spec)
    return re.sub(r"[=<>!'\"]", "", text) or "sweep"


def sweep_of(hydra_cfg: Any) -> Sweep:
    """The :class:`Sweep` of a multirun job (``hydra_cfg``: ``HydraConfig.get()``)."""
    sweep_dir = Path(str(hydra_cfg.sweep.dir))
    from_cli, launched = _command_line_sweeps(sweep_dir)
    params = hydra_cfg.sweeper.get("params") or {}
    spec = [f"{k}={v}" for k, v in params.items()]
    spec += [o for o in from_cli if _key(o) not in {_key(s) for s in spec}]
    choices = hydra_cfg.runtime.choices
    named = [choices.get(g) for g in ("experiment", "hparams_search")]
    label = next((str(n) for n in named if n not in (None, "null")), group_label(spec))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(launched)) if launched else sweep_dir.name
    return Sweep(tuple(spec), label[:GROUP_LABEL_MAX], stamp)


def swept_overrides(hydra_cfg: Any, sweep: Sweep) -> list[str]:
    """This job's values of the swept keys, as overrides (``model=kgan``, ``seed=1``)."""
    return [o for o in hydra_cfg.overrides.task if _key(o) in sweep.keys]


def _shown(name: str, override: str) -> bool:
    """Whether ``name`` already shows the override's value (``dcgan`` of ``model=dcgan``, ``s1`` of ``seed=1``)."""
    key, value = _key(override), override.split("=", 1)[1]
    tokens = set(re.split(r"[-_ ]", name))
    return value in tokens or (key == "seed" and f"s{value}" in tokens)


def run_identity(cfg: DictConfig, hydra_cfg: Any | None = None) -> RunIdentity:
    """Name, group and tags of the job composed as ``cfg`` (``hydra_cfg``: ``HydraConfig.get()`` in a Hydra job)."""
    from hydra.types import RunMode

    base = str(cfg.run_name)
    swept: list[str] = []
    sweep_group = None
    if hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN:
        sweep = sweep_of(hydra_cfg)
        swept = swept_overrides(hydra_cfg, sweep)
        sweep_group = f"{sweep.label}-{sweep.stamp}"
    extra = [o for o in swept if not _shown(base, o)]
    name = " ".join([base, *extra])
    tags = [str(t) for t in cfg.get("tags") or []] + [f"seed={cfg.seed}", *swept]
    unique = tuple(dict.fromkeys(t[:TAG_MAX] for t in tags))
    group = cfg.get("group") or sweep_group or name
    return RunIdentity(name=name, group=str(group), tags=unique)
