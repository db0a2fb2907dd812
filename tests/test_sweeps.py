"""Multirun sweeps: joblib launcher, one W&B run per job in one group, Optuna search, SLURM config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from gan_interp.wandb_offline import find_offline_runs, read_offline_run

TINY = [
    "data=fake",
    "model.ngf=8",
    "model.ndf=8",
    "model.latent_dim=16",
    "trainer.max_epochs=1",
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


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


def test_joblib_multirun_gives_each_job_its_own_wandb_run_in_one_group(tmp_path):
    sweep = tmp_path / "sweep"
    proc = _cli(
        [
            "-m",
            *TINY,
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "seed=0,1",
            "logger=wandb",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [read_offline_run(p) for p in find_offline_runs(sweep)]
    assert len(runs) == 2
    assert sorted(r.name for r in runs) == ["dcgan-fake-s0", "dcgan-fake-s1"]
    assert {r.group for r in runs} == {sweep.name}  # one group per sweep
    assert all(r.series("train/d_loss_epoch") for r in runs)


def test_optuna_search_runs_trials_and_reports_the_best(tmp_path):
    sweep = tmp_path / "optuna"
    proc = _cli(
        [
            "hparams_search=dcgan_optuna",
            *TINY,
            "logger=none",
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.sampler.n_startup_trials=2",
            "optimized_metric=train/g_loss_epoch",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["name"] == "optuna" and "model.lr" in result["best_params"]
    assert 5e-5 <= result["best_params"]["model.lr"] <= 5e-4
    assert isinstance(result["best_value"], float)
    assert len([p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit()]) == 3


def test_slurm_launcher_config_is_documented():
    from gan_interp.paths import config_dir

    text = (config_dir() / "hydra" / "launcher" / "slurm.yaml").read_text()
    cfg = yaml.safe_load(text)
    assert cfg["defaults"] == ["submitit_slurm"] and cfg["gpus_per_node"] == 1
    assert "pip install -e .[slurm]" in text


def test_ddp_config_trains_with_two_cpu_processes(tmp_path):
    """trainer=ddp through the CLI, 2 gloo processes on CPU: one run dir, rank-zero files, loadable checkpoint."""
    import json

    import torch

    run = tmp_path / "run"
    proc = _cli(
        [
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.precision=32-true",
            "trainer.sync_batchnorm=false",
            *[a for a in TINY if a not in ("callbacks=none", "trainer.max_epochs=1")],
            "~callbacks.rich_progress_bar",
            "trainer.max_epochs=2",
            "logger=csv",
            "probes=activations",
            f"hydra.run.dir={run}",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    # fake data: 48 training images, batch 64 split over 2 ranks -> 1 batch per rank per epoch
    assert metrics["g_steps"] == 2.0
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1 and "state_dict" in ckpt
    assert (run / "probes" / "epoch_000" / "activations" / "summary.json").is_file()
    assert not (run / "failure.json").exists()


def test_ddp_on_cpu_with_sync_batchnorm_is_a_one_line_error(tmp_path):
    proc = _cli(["trainer=ddp", "trainer.accelerator=cpu", *TINY, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: trainer.sync_batchnorm=true needs GPUs; with trainer.accelerator=cpu set trainer.sync_batchnorm=false"
    )
