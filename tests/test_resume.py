"""Kill a run mid-epoch, resume from last.ckpt, and get exactly the uninterrupted result."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

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


def _fit(make_cfg, out: Path, extra_callbacks=(), ckpt_path=None, model="dcgan", steps_per_checkpoint=2):
    cfg = make_cfg([*TINY, f"model={model}", f"paths.output_dir={out}"])
    datamodule, model, trainer = build(cfg)
    every_step = ModelCheckpoint(
        dirpath=out / "checkpoints", save_last=True, every_n_train_steps=steps_per_checkpoint, save_top_k=0
    )
    trainer.callbacks.extend([every_step, *extra_callbacks])
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
    # epoch1-batch0: killed after the epoch-1 Lloyd update; epoch0-batch1: after the first build
    kgan = {"model": "kgan", "steps_per_checkpoint": 1}  # k-GAN: a varying number of optimizer steps per batch
    full = _fit(make_cfg, tmp_path / "full", **kgan)
    reference = _state(full)
    with pytest.raises(Kill):
        _fit(make_cfg, tmp_path / "killed", [KillAt(*kill_at)], **kgan)
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["epoch"] == kill_at[0] and saved["kgan"]["partition_epoch"] == kill_at[0]
    assert saved["kgan"]["batches_seen"] == 3 * kill_at[0] + kill_at[1] + 1  # 3 batches per epoch

    resumed = _fit(make_cfg, tmp_path / "killed", ckpt_path=last, **kgan)
    assert resumed.g_steps == full.g_steps == 2 and resumed.batches_seen == full.batches_seen == 6
    for key, value in reference.items():
        assert torch.equal(resumed.state_dict()[key], value), f"{key} differs after resume"
    a, b = full.partition, resumed.partition
    assert torch.equal(a.row_to_member, b.row_to_member) and a.medoid_rows == b.medoid_rows and a.epoch == b.epoch == 1
    assert a.cell_sizes == b.cell_sizes and a.stats == b.stats
    final = "kgan/epoch_001/partition.json"
    assert json.loads((tmp_path / "full" / final).read_text()) == json.loads((tmp_path / "killed" / final).read_text())
