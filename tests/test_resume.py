"""Kill or signal a run mid-epoch, resume from last.ckpt, and get exactly the uninterrupted result."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from gan_interp.callbacks.interrupt import TrainingInterrupted, interruption_of
from gan_interp.train import build

TINY = [
    "data=fake",
    "model.ngf=8",
    "model.ndf=8",
    "model.latent_dim=16",
    "logger=none",
    "trainer.max_epochs=2",
    "~callbacks.sample_grid",
    "~callbacks.model_checkpoint",
]


class Kill(Exception):
    pass


class KillAt(L.Callback):
    """Simulates a crash (power cut) right after batch ``batch`` of epoch ``epoch`` was checkpointed."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            raise Kill()


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _fit(make_cfg, out: Path, extra_callbacks=(), ckpt_path=None, model="dcgan", steps_per_checkpoint=2, overrides=()):
    cfg = make_cfg([*TINY, f"model={model}", f"paths.output_dir={out}", *overrides])
    datamodule, model, trainer = build(cfg)
    every_step = [  # None: no step checkpoints (the signal tests save their own)
        ModelCheckpoint(dirpath=out / "checkpoints", save_last=True, every_n_train_steps=n, save_top_k=0)
        for n in [steps_per_checkpoint]
        if n
    ]
    trainer.callbacks.extend([*every_step, *extra_callbacks])
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    return model


@pytest.mark.parametrize("kill_at", [(1, 0), (0, 1)], ids=["epoch1-batch0", "epoch0-batch1"])
def test_resume_mid_epoch_matches_uninterrupted_run(make_cfg, tmp_path, kill_at):
    reference = _state(_fit(make_cfg, tmp_path / "full"))

    with pytest.raises(Kill):
        _fit(make_cfg, tmp_path / "killed", [KillAt(*kill_at)])
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["epoch"] == kill_at[0]
    assert saved["DataModule" if "DataModule" in saved else "GANDataModule"]["batches_done"] == kill_at[1] + 1

    resumed = _fit(make_cfg, tmp_path / "killed", ckpt_path=last)
    assert resumed.g_steps == 6
    for key, value in reference.items():
        assert torch.equal(resumed.state_dict()[key], value), f"{key} differs after resume"


@pytest.mark.parametrize("kill_at", [(1, 0), (0, 1)], ids=["epoch1-batch0", "epoch0-batch1"])
def test_kgan_resume_mid_epoch_keeps_the_partition(make_cfg, tmp_path, kill_at):
    # epoch1-batch0: killed after the epoch-1 update (sites from the members' samples); epoch0-batch1: after
    # the first build. Per-cell batches: 3 cells of 16 training images, 4 of each cell per batch, 4 batches/epoch
    kgan = {"model": "kgan", "steps_per_checkpoint": 1, "overrides": ["data.batch_size=4"]}
    full = _fit(make_cfg, tmp_path / "full", **kgan)
    reference = _state(full)
    with pytest.raises(Kill):
        _fit(make_cfg, tmp_path / "killed", [KillAt(*kill_at)], **kgan)
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["epoch"] == kill_at[0] and saved["kgan"]["partition_epoch"] == kill_at[0]
    assert saved["kgan"]["batches_seen"] == 4 * kill_at[0] + kill_at[1] + 1  # 4 batches per epoch

    resumed = _fit(make_cfg, tmp_path / "killed", ckpt_path=last, **kgan)
    assert resumed.g_steps == full.g_steps == 2 and resumed.batches_seen == full.batches_seen == 8
    for key, value in reference.items():
        assert torch.equal(resumed.state_dict()[key], value), f"{key} differs after resume"
    a, b = full.partition, resumed.partition
    assert torch.equal(a.row_to_member, b.row_to_member) and a.medoid_rows == b.medoid_rows and a.epoch == b.epoch == 1
    assert a.cell_sizes == b.cell_sizes and a.stats == b.stats
    final = "kgan/epoch_001/partition.json"
    assert json.loads((tmp_path / "full" / final).read_text()) == json.loads((tmp_path / "killed" / final).read_text())


# -- a signal (scheduler's SIGTERM, Ctrl-C's SIGINT) instead of a crash ------------------------------------
class SignalAt(L.Callback):
    """Sends ``signum`` to this process while batch ``batch`` of epoch ``epoch`` trains (or validates)."""

    def __init__(self, signum: int, epoch: int, batch: int, during: str = "train") -> None:
        self.signum, self.epoch, self.batch, self.during = signum, epoch, batch, during

    def _maybe_send(self, trainer, batch_idx, during):
        if during == self.during and (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            os.kill(os.getpid(), self.signum)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._maybe_send(trainer, batch_idx, "train")

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._maybe_send(trainer, batch_idx, "val")


NO_PROBES = ["probes=none", "metrics=none"]  # the weights are what is compared


def _interrupted_fit(make_cfg, out: Path, signal_at: SignalAt, overrides=NO_PROBES) -> TrainingInterrupted:
    cfg = make_cfg([*TINY, f"paths.output_dir={out}", *overrides])
    datamodule, model, trainer = build(cfg)
    trainer.callbacks.append(signal_at)
    with pytest.raises(BaseException) as stopped:  # TrainingInterrupted, or Lightning's SIGTERM exit
        trainer.fit(model, datamodule=datamodule)
    stop = interruption_of(trainer, stopped.value)
    assert stop is not None, f"not an interruption: {stopped.value!r}"
    return stop


@pytest.mark.parametrize(
    "signum, at, during, batch_size, saved_at",
    [
        # (signal, (epoch, batch) it arrives in, train|val, data.batch_size, (epoch, global step) of the checkpoint)
        (signal.SIGTERM, (0, 1), "train", 16, (0, 4)),  # mid-epoch: saved after batch 1 of epoch 0
        (signal.SIGINT, (1, 0), "train", 16, (1, 8)),  # Ctrl-C in the first batch of epoch 1
        (signal.SIGTERM, (0, 0), "val", 16, (1, 6)),  # the only val batch: Lightning stops once epoch 0 is complete
        (signal.SIGTERM, (0, 0), "val", 4, (0, 24)),  # val batch 0 of 2: saved mid-validation (rerun on resume)
    ],
    ids=["sigterm-epoch0-batch1", "sigint-epoch1-batch0", "sigterm-end-of-validation", "sigterm-mid-validation"],
)
def test_signal_checkpoint_resumes_to_the_uninterrupted_run(
    make_cfg, tmp_path, signum, at, during, batch_size, saved_at
):
    quick = [*NO_PROBES, f"data.batch_size={batch_size}"]  # 48 training images: 3 or 12 batches per epoch
    full = _fit(make_cfg, tmp_path / "full", steps_per_checkpoint=None, overrides=quick)
    reference = _state(full)

    stop = _interrupted_fit(make_cfg, tmp_path / "stopped", SignalAt(signum, *at, during=during), quick)
    assert stop.signum == signum and stop.exit_code == 128 + signum  # 143 / 130
    assert stop.checkpoint == tmp_path / "stopped" / "checkpoints" / "last.ckpt"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C handler given back
    saved = torch.load(stop.checkpoint, map_location="cpu", weights_only=True)
    assert (saved["epoch"], saved["global_step"]) == (stop.epoch, stop.global_step) == saved_at
    if during == "train":  # saved right after the batch the signal arrived in
        assert saved["GANDataModule"]["batches_done"] == at[1] + 1
    assert str(stop).startswith(f"interrupted by {signal.Signals(signum).name} at epoch {saved_at[0]}, step")

    resumed = _fit(
        make_cfg, tmp_path / "stopped", ckpt_path=stop.checkpoint, steps_per_checkpoint=None, overrides=quick
    )
    assert resumed.g_steps == full.g_steps == 2 * 48 // batch_size
    for key, value in reference.items():
        assert torch.equal(resumed.state_dict()[key], value), f"{key} differs after resume"
