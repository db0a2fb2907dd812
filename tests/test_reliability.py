"""Reliability: divergence stops cleanly, bad output dirs fail fast, sweeps survive a crashing job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan_interp.callbacks.guards import TrainingDiverged, preflight_output_dir
from gan_interp.errors import GanInterpError
from gan_interp.models import DCGAN
from gan_interp.train import build

TINY = ["data=fake", "model.ngf=8", "model.ndf=8", "model.latent_dim=16", "logger=none"]


class ExplodingDCGAN(DCGAN):
    """Logs a NaN loss from the 5th training batch on (after one epoch of 3 good batches)."""

    def training_step(self, batch, batch_idx):
        super().training_step(batch, batch_idx)
        if self.g_steps >= 5:
            with torch.no_grad():
                self.generator.to_image[0].weight.fill_(float("nan"))
            self.log("train/g_loss_nan", float("nan"))


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(make_cfg):
    cfg = make_cfg([*TINY, "trainer.max_epochs=3"])
    datamodule, _, trainer = build(cfg)
    model = ExplodingDCGAN(**{k: v for k, v in cfg.model.items() if k != "_target_"})
    with pytest.raises(TrainingDiverged) as err:
        trainer.fit(model, datamodule=datamodule)
    msg = str(err.value)
    assert "\n" not in msg and "train/g_loss_nan=nan" in msg and "epoch 1" in msg
    ckpt_dir = Path(cfg.paths.output_dir) / "checkpoints"
    assert f"last good checkpoint: {ckpt_dir}" in msg
    state = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["epoch"] == 0 and state["g_steps"] == 3
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


def test_unwritable_output_dir_fails_fast(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(GanInterpError, match="is not writable") as err:
        preflight_output_dir(blocker / "run")
    assert "hydra.run.dir=" in str(err.value) and "\n" not in str(err.value)


def test_nearly_full_disk_fails_fast(tmp_path):
    with pytest.raises(GanInterpError, match=r"MiB free at .* \(need >= 1000000000 MiB"):
        preflight_output_dir(tmp_path / "run", min_free_mb=1e9)


def _cli(args, cwd, timeout=600):
    env = {**os.environ, "WANDB_MODE": "offline", "GAN_INTERP_CACHE": str(Path(cwd) / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "gan_interp.train", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_cli_unwritable_run_dir_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    proc = _cli(["data=fake", "logger=none", f"hydra.run.dir={tmp_path}/file/run"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: output dir {tmp_path}/file is not writable")
    assert "Traceback" not in proc.stderr


def test_multirun_records_a_crashing_job_and_runs_the_rest(tmp_path):
    # job 1 asks for a resolution DCGAN can't make -> fails; jobs 0 and 2 train
    proc = _cli(
        [
            "-m",
            *TINY,
            "trainer.max_epochs=1",
            "callbacks=none",
            "data.resolution=32,48,64",
            f"hydra.sweep.dir={tmp_path}/sweep",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir() and p.name[0].isdigit())
    assert len(jobs) == 3
    failed = [j for j in jobs if (j / "failure.json").is_file()]
    assert [j.name.split("_")[0] for j in failed] == ["1"]
    record = json.loads((failed[0] / "failure.json").read_text())
    assert "data.resolution=48" in record["error"] and "data.resolution=48" in record["overrides"]
    for ok in (jobs[0], jobs[2]):
        assert json.loads((ok / "metrics.json").read_text())["g_steps"] == 3.0
