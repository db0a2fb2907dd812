"""Training entry point.

    python -m gan_interp.train model=dcgan data=synthetic_posters
    python -m gan_interp.train -m model=dcgan,stylegan_lite,kgan      # multirun comparison

Everything is composed by Hydra from ``conf/``; the run directory (checkpoints, sample grids,
W&B offline run, logs) is Hydra's output dir. This module imports no torch or Lightning at load time
(``--help`` and config errors answer in about a second); the job itself is :mod:`gan_interp.training`,
whose names are also reachable from here (``from gan_interp.train import build``).
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from gan_interp.checkpoints import checkpoint_file
from gan_interp.config import check_group_choices, group_options
from gan_interp.disk import preflight_output_dir
from gan_interp.errors import ConfigError, GanInterpError, exit_with_error, one_line_errors
from gan_interp.paths import config_dir
from gan_interp.signals import Terminated, stop_on_sigterm

log = logging.getLogger(__name__)
# Hydra's flags that only print and exit (-h/--help: help_text): no output folder is checked or made for them
INFO_FLAGS = ("--hydra-help", "-i", "--info", "-c", "--cfg", "-sc", "--shell-completion")


def __getattr__(name: str) -> Any:
    """The job's names (``build``, ``train``, ``failure_record``, ...) live in :mod:`gan_interp.training`."""
    if name.startswith("__"):
        raise AttributeError(name)
    from gan_interp import training

    try:
        return getattr(training, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


# what a run that failed its checks (before any training output) leaves in its run dir
UNUSED_RUN_FILES = frozenset({".hydra", "train.log", "failure.json"})


def remove_unused_run_dir(run_dir: Path) -> bool:
    """Delete ``run_dir`` if it holds nothing but Hydra's record, the log and failure.json (a run that failed
    validation); a dir with anything else (checkpoints, samples, logs of a run) is kept. True if removed."""
    import shutil

    try:
        names = {p.name for p in run_dir.iterdir()}
    except OSError:
        return False
    if not names <= UNUSED_RUN_FILES:
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return not run_dir.exists()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """One job. In a multirun, a crashing job is recorded (failure.json, W&B exit code 1) and
    returns NaN so the remaining jobs of the sweep still run; a single run exits non-zero. SIGTERM /
    SIGINT stop the job (and a sweep) with a checkpoint, failure.json with the resume command, and
    exit status 143 / 130."""
    from gan_interp.callbacks.interrupt import TrainingInterrupted
    from gan_interp.logging_utils import finish_wandb
    from gan_interp.training import _is_multirun, objective, record_failure, report_interruption, train

    stop_on_sigterm()  # from here on a SIGTERM is recorded (before: the job had not started)
    try:
        return objective(train(cfg), cfg)
    except TrainingInterrupted as stop:  # SIGTERM / SIGINT: a sweep stops too
        report_interruption(cfg, stop)
        raise SystemExit(stop.exit_code) from None
    except (KeyboardInterrupt, Terminated) as exc:  # a signal outside the training steps (e.g. data preparation)
        name, code = ("SIGTERM", Terminated.exit_code) if isinstance(exc, Terminated) else ("SIGINT", 130)
        finish_wandb(exit_code=code)
        record_failure(cfg, exc)
        print(f"interrupted by {name} outside the training steps; no checkpoint saved", file=sys.stderr)
        raise SystemExit(code) from None
    except Exception as exc:
        finish_wandb(exit_code=1)
        where = record_failure(cfg, exc)
        if _is_multirun():
            log.error("job failed (%s: %s); recorded in %s; the sweep goes on", type(exc).__name__, exc, where)
            return math.nan
        if isinstance(exc, GanInterpError):
            remove_unused_run_dir(Path(str(cfg.paths.output_dir)))
            exit_with_error(exc, log)
        raise
    finally:
        finish_wandb()


def _override_typo(exc: Exception) -> ConfigError | None:
    """Hydra's several-line complaint about an override of a key the config lacks (a typo), as one line."""
    import re

    found = re.match(r"Could not override '([^']+)'\.\s+To append to your config use (\S+)", str(exc))
    if type(exc).__name__ != "ConfigCompositionException" or found is None:
        return None
    key, append = found.groups()
    return ConfigError(
        f"{key} is not a key of the config; check its spelling (python -m gan_interp.train --cfg job lists the keys) "
        f"or add it with {append}"
    )


def _output_dir_from_argv(argv: list[str]) -> tuple[Path, float] | None:
    """Compose the config as Hydra will (sweep lists dropped) to learn the run/sweep dir early; an override
    of a key the config lacks (a typo) is a one-line :class:`ConfigError`."""
    from hydra import compose, initialize_config_dir

    multirun = any(a in ("-m", "--multirun") for a in argv)
    overrides = [a for a in argv if not a.startswith("-")]
    for candidates in (overrides, [o for o in overrides if "," not in o]):
        try:
            with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
                cfg = compose("train", overrides=candidates, return_hydra_config=True)
            node = cfg.hydra.sweep if multirun else cfg.hydra.run
            # check the parent: the leaf name holds a timestamp Hydra will pick itself a moment later
            return Path(str(node.dir)).parent, float(cfg.get("min_free_disk_mb", 0))
        except Exception as exc:  # noqa: BLE001 - other composition problems: Hydra reports them itself
            typo = _override_typo(exc)
            if typo is not None:
                raise typo from None
    return None


def help_text(conf_dir: Path) -> str:
    """``--help``: usage and the config groups with their options (read from ``conf/``, no Hydra composition)."""
    groups = sorted(p.name for p in conf_dir.iterdir() if p.is_dir() and p.name != "hydra")
    lines = [
        "usage: python -m gan_interp.train [-m] [group=option ...] [key=value ...]",
        "",
        "config groups (group=option; -m with group=a,b runs a sweep):",
        *(f"  {g}: {', '.join(group_options(conf_dir, g))}" for g in groups),
        "",
        "any value: key=value (e.g. trainer.max_epochs=3); a new key: +key=value",
        "the composed config: python -m gan_interp.train --cfg job [overrides]; Hydra's flags: --hydra-help",
    ]
    return "\n".join(lines)


def main() -> None:
    """Console entry: one-line checks of group choices and the output dir, then Hydra."""
    if any(a in ("-h", "--help") for a in sys.argv[1:]):  # fast: Hydra's own help composes every group option
        print(help_text(config_dir()))
        return
    with one_line_errors():
        check_group_choices(sys.argv[1:], config_dir())
        for arg in sys.argv[1:]:  # a missing resume checkpoint: one line before Hydra makes a run dir
            key, _, value = arg.partition("=")
            if key.lstrip("+") == "ckpt_path" and value not in ("", "null"):
                checkpoint_file(value)
        found = None if any(a in INFO_FLAGS for a in sys.argv[1:]) else _output_dir_from_argv(sys.argv[1:])
        if found is not None:
            preflight_output_dir(*found)
    hydra_main()


if __name__ == "__main__":
    main()
