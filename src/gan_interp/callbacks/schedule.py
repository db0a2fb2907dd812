"""When the probe and metrics callbacks run: one epoch schedule, spelled one way for both.

Epoch numbers are **0-based** (Lightning's ``trainer.current_epoch``): ``epochs: [0]`` means "after
the first training epoch". The options (``conf/schedule/<preset>.yaml``, one node per callback:
``schedule.probes`` and ``schedule.metrics``):

* ``epochs`` - a list of epochs to run after, e.g. ``[0, 9]``;
* ``every_n_epochs`` - also after every n-th epoch (after epochs n-1, 2n-1, ...); ``0`` = off;
* ``at_end`` - once more when training ends, after the last finished epoch, unless it already ran.

A scheduled callback (:class:`ScheduledCallback`) runs on global rank zero only and never under
``trainer.fast_dev_run`` (a smoke run; Lightning skips its own checkpointing there too). The last
finished epoch is the last one whose ``on_train_epoch_end`` the callback saw. The epochs already done
are kept in the callback's checkpoint state, so a resumed run does not repeat them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field, fields
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from gan_interp.errors import ConfigError

# old spellings of the options (before one schedule served both callbacks) -> their name now
RENAMED = {"on_train_end": "at_end", "at_train_end": "at_end"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class EpochSchedule:
    """After which 0-based epochs something runs (see the module doc)."""

    epochs: list[int] = field(default_factory=list)  # 0-based epochs to run after
    every_n_epochs: int = 0  # also after every n-th epoch; 0 = off
    at_end: bool = True  # once more for the last finished epoch when training ends (unless done)
    where: InitVar[str] = "schedule"  # config path named in error messages, e.g. schedule.probes

    def __post_init__(self, where: str) -> None:
        epochs = list(self.epochs) if isinstance(self.epochs, (list, tuple)) or OmegaConf.is_list(self.epochs) else None
        if epochs is None or not all(_is_int(e) and e >= 0 for e in epochs):
            raise ConfigError(
                f"{where}.epochs={self.epochs!r} must be a list of 0-based epoch numbers >= 0, e.g. [0, 9]"
            )
        if not _is_int(self.every_n_epochs) or self.every_n_epochs < 0:
            raise ConfigError(f"{where}.every_n_epochs={self.every_n_epochs!r} must be an integer >= 1, or 0 for off")
        if not isinstance(self.at_end, bool):
            raise ConfigError(f"{where}.at_end={self.at_end!r} must be true or false")
        self.epochs = sorted(set(epochs))

    @classmethod
    def from_config(cls, node: EpochSchedule | Mapping[str, Any] | None, where: str = "schedule") -> EpochSchedule:
        """A schedule from a config node (``None`` -> the defaults); unknown keys fail in one line."""
        if isinstance(node, EpochSchedule):
            return node
        if node is None:
            return cls(where=where)
        if isinstance(node, DictConfig):
            node = OmegaConf.to_container(node, resolve=True)  # type: ignore[assignment]
        if not isinstance(node, Mapping):
            raise ConfigError(f"{where}={node!r} must be a mapping with epochs, every_n_epochs and at_end")
        options = [f.name for f in fields(cls)]
        for key in node:
            if key not in options:
                hint = f" (renamed to {RENAMED[key]})" if key in RENAMED else ""
                raise ConfigError(f"{where}.{key} is not a schedule option{hint}; options: {', '.join(options)}")
        return cls(**node, where=where)

    def due(self, epoch: int) -> bool:
        """Whether something runs after the 0-based ``epoch`` (``at_end`` aside)."""
        return epoch in self.epochs or (self.every_n_epochs > 0 and (epoch + 1) % self.every_n_epochs == 0)


def reject_schedule_keys(node: Mapping[str, Any], section: str) -> None:
    """One-line :class:`ConfigError` for schedule options left in a ``probes``/``metrics`` node."""
    for key in (*(f.name for f in fields(EpochSchedule)), *RENAMED):
        if key in node:
            raise ConfigError(
                f"{section}.{key} is not set there any more; use schedule.{section}.{RENAMED.get(key, key)} "
                "(when probes and metrics run is conf/schedule/)"
            )


def runs_here(trainer: L.Trainer) -> bool:
    """Scheduled work runs on global rank zero only, and never under ``trainer.fast_dev_run``."""
    return bool(trainer.is_global_zero) and not getattr(trainer, "fast_dev_run", False)


class ScheduledCallback(L.Callback):
    """Calls :meth:`run` after the epochs its :class:`EpochSchedule` names and, with ``at_end``, when
    training ends; only where :func:`runs_here`, and each epoch at most once."""

    def __init__(
        self,
        schedule: EpochSchedule | Mapping[str, Any] | None,  # when to run (None -> EpochSchedule())
        where: str,  # config path of the schedule, for error messages (schedule.probes, ...)
    ) -> None:
        self.schedule = EpochSchedule.from_config(schedule, where)
        self.done: set[int] = set()  # epochs already run (kept in the checkpoint)
        self.last_epoch: int | None = None  # the last finished epoch seen in on_train_epoch_end

    def run(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int, source: str) -> Any:
        """The scheduled work for ``epoch``; ``source`` is ``train_epoch_end`` or ``train_end``."""
        raise NotImplementedError

    def _run_once(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int, source: str) -> None:
        if epoch in self.done or not runs_here(trainer):
            return
        self.run(trainer, pl_module, epoch, source)
        self.done.add(epoch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.last_epoch = int(trainer.current_epoch)
        if self.schedule.due(self.last_epoch):
            self._run_once(trainer, pl_module, self.last_epoch, "train_epoch_end")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.schedule.at_end and self.last_epoch is not None:
            self._run_once(trainer, pl_module, self.last_epoch, "train_end")

    def state_dict(self) -> dict[str, Any]:
        return {"done": sorted(self.done)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # "probed": the ProbeCallback's key in checkpoints written before the shared schedule
        self.done = set(state_dict.get("done", state_dict.get("probed", [])))
