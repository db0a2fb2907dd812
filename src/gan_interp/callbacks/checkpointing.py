"""What a run keeps on disk, and how it writes it.

* :class:`RunCheckpoint` - the checkpoint policy: ``last.ckpt`` after every epoch (optionally also every
  N optimizer steps mid-epoch), ``epoch_XXX.ckpt`` kept after every N-th epoch (``last.ckpt`` then links
  to it instead of a second copy);
* :class:`BestCheckpoint` - ``best.ckpt`` by a chosen metric (off unless ``monitor`` is set);
* :class:`AtomicCheckpointIO` - every checkpoint is written to a temporary sibling and renamed into
  place, after checking that the disk can take it: a full disk stops the run with one line
  (:class:`DiskFull`) naming the free space and the last good checkpoint, and never leaves a
  truncated file.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from gan_interp.disk import MIB, free_mb
from gan_interp.errors import ConfigError, GanInterpError
from gan_interp.io import TMP_MARK, atomic_path, torch_save

log = logging.getLogger(__name__)


class DiskFull(GanInterpError):
    """Not enough free disk for the next checkpoint; nothing was written, the last good one is named."""


def payload_bytes(obj: Any) -> int:
    """Bytes of all tensors in a (nested) checkpoint dict: what ``torch.save`` will write, give or take."""
    if hasattr(obj, "nbytes") and hasattr(obj, "element_size"):  # torch.Tensor
        return int(obj.nbytes)
    if isinstance(obj, dict):
        return sum(payload_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(payload_bytes(v) for v in obj)
    return 0


def newest_checkpoint(directory: str | Path) -> Path | None:
    """The most recently written complete ``*.ckpt`` in ``directory`` (temp files skipped), if any."""
    files = [p for p in Path(directory).glob("*.ckpt") if TMP_MARK not in p.name and p.resolve().is_file()]
    return max(files, key=lambda p: p.resolve().stat().st_mtime, default=None)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temp sibling + rename, after a free-space check (Lightning writes in place)."""

    def __init__(
        self,
        reserve_mb: float = 200.0,  # keep this much free beyond the checkpoint itself (min_free_disk_mb)
    ) -> None:
        super().__init__()
        self.reserve_mb = float(reserve_mb)
        self.last_good: Path | None = None  # the newest checkpoint this IO wrote completely

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        need_mb = payload_bytes(checkpoint) / MIB
        free = free_mb(path.parent)
        if free < need_mb + self.reserve_mb:
            raise DiskFull(self._message(path, free, f"needs ~{need_mb:.0f} MiB + {self.reserve_mb:.0f} MiB reserve"))
        try:
            torch_save(checkpoint, path)
        except (OSError, RuntimeError) as exc:  # torch reports a failed write as RuntimeError
            free = free_mb(path.parent)
            if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or free < need_mb:
                detail = "the disk filled while writing; the partial file was removed"
                raise DiskFull(self._message(path, free, detail)) from None
            raise
        self.last_good = path

    def _message(self, path: Path, free: float, detail: str) -> str:
        last = self.last_good or newest_checkpoint(path.parent)
        kept = f"last good checkpoint: {last}" if last else "no checkpoint was written before it"
        resume = f"; free disk space (or lower min_free_disk_mb) and resume with ckpt_path={last}" if last else ""
        return f"only {free:.0f} MiB free at {path.parent} for {path.name} ({detail}); {kept}{resume}"


def _atomic_symlink(target: str, link: str) -> None:
    """Point ``link`` at ``target`` (relative) in one rename: readers never find ``link`` missing."""
    tmp = os.path.join(os.path.dirname(link), f".{os.path.basename(link)}{TMP_MARK}link-{os.getpid()}")
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(os.path.relpath(target, os.path.dirname(link)), tmp)
    os.replace(tmp, link)


class RunCheckpoint(ModelCheckpoint):
    """The run's checkpoints: ``last.ckpt`` after every epoch, ``epoch_XXX.ckpt`` after every N-th.

    ``last.ckpt`` is a symlink to the epoch file written at the same step, otherwise a file of its
    own; ``every_n_train_steps`` also refreshes it mid-epoch (a resumable mid-epoch checkpoint).
    """

    def __init__(
        self,
        dirpath: str | Path | None = None,  # <run>/checkpoints
        every_n_epochs: int = 5,  # keep epoch_XXX.ckpt after every N-th epoch (0 = none, 1 = all)
        every_n_train_steps: int = 0,  # refresh last.ckpt once N optimizer steps passed (0 = epoch ends only)
        filename: str = "epoch_{epoch:03d}",  # name of the kept epoch files
    ) -> None:
        if int(every_n_epochs) < 0 or int(every_n_train_steps) < 0:
            raise ConfigError(
                f"callbacks.model_checkpoint: every_n_epochs={every_n_epochs} and "
                f"every_n_train_steps={every_n_train_steps} must be >= 0 (0 = off)"
            )
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            auto_insert_metric_name=False,
            save_last="link",
            save_top_k=-1,
            every_n_epochs=int(every_n_epochs),
        )
        self.last_every_n_train_steps = int(every_n_train_steps)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any) -> None:
        n = self.last_every_n_train_steps
        due = n and trainer.global_step - self._last_global_step_saved >= n
        if due and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)  # the epoch file at every N-th epoch (+ last)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer) and not trainer.sanity_checking:
            self._save_last_every_epoch(trainer)

    def _save_last_every_epoch(self, trainer: L.Trainer) -> None:
        # Lightning saves last.ckpt only when it wrote an epoch file at this step; we want it every epoch
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, Any]) -> None:
        path = self.format_checkpoint_name(monitor_candidates, self.CHECKPOINT_NAME_LAST)
        written_now = self._last_global_step_saved == trainer.global_step and self._last_checkpoint_saved
        self.last_model_path = path
        if written_now and self._last_checkpoint_saved != path:  # an epoch file of this very step: link to it
            self._link_checkpoint(trainer, self._last_checkpoint_saved, path)
        else:
            self._save_checkpoint(trainer, path)

    @staticmethod
    def _link_checkpoint(trainer: L.Trainer, filepath: str, linkpath: str) -> None:
        if trainer.is_global_zero and os.path.abspath(filepath) != os.path.abspath(linkpath):
            try:
                _atomic_symlink(filepath, linkpath)
            except OSError:  # no symlinks here (e.g. some network file systems): an atomic copy
                with atomic_path(linkpath) as tmp:
                    shutil.copyfile(filepath, tmp)
        trainer.strategy.barrier()


class BestCheckpoint(ModelCheckpoint):
    """``best.ckpt``: the checkpoint with the best value of ``monitor`` so far (off when ``monitor`` is null).

    Epochs where the metric was not computed (e.g. metrics every 5 epochs) keep the current best
    instead of failing, as Lightning's ModelCheckpoint would.
    """

    def __init__(
        self,
        dirpath: str | Path | None = None,  # <run>/checkpoints
        monitor: str | None = None,  # a key of trainer.callback_metrics, e.g. metrics/fid (null = off)
        mode: str = "min",  # min: lower is better (FID, KID); max: higher is better
        filename: str = "best",  # -> best.ckpt
    ) -> None:
        if mode not in ("min", "max"):
            raise ConfigError(f"callbacks.best_checkpoint.mode={mode!r} must be min or max")
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            monitor=monitor,
            mode=mode,
            auto_insert_metric_name=False,
            save_top_k=1 if monitor else 0,
            save_last=False,
            every_n_epochs=1,
            enable_version_counter=False,
        )

    def _save_topk_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, Any]) -> None:
        if self.monitor is None or self.monitor not in monitor_candidates:
            return
        super()._save_topk_checkpoint(trainer, monitor_candidates)
