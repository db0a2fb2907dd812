"""Multirun sweeps: joblib launcher, one W&B run per job in one group, Optuna search, SLURM config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from gan_interp.wandb_offline import find_offline_runs, read_offline_run

TINY = ["data=fake", "model.ngf=8", "model.ndf=8", "model.latent_dim=16", "trainer.max_epochs=1",
        "callbacks=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def _cli(args, cwd, timeout=600):
    env = {**os.environ, "WANDB_MODE": "offline", "GAN_INTERP_CACHE": str(Path(cwd) / "cache")}
    return subprocess.run([sys.executable, "-m", "gan_interp.train", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_joblib_multirun_gives_each_job_its_own_wandb_run_in_one_group(tmp_path):
    sweep = tmp_path / "sweep"
    proc = _cli(["-m", *TINY, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1", "logger=wandb",
                 f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [read_offline_run(p) for p in find_offline_runs(sweep)]
    assert len(runs) == 2
    assert sorted(r.name for r in runs) == ["dcgan-fake-s0", "dcgan-fake-s1"]
    assert {r.group for r in runs} == {sweep.name}  # one group per sweep
    assert all(r.series("train/d_loss_epoch") for r in runs)


def test_optuna_search_runs_trials_and_reports_the_best(tmp_path):
    sweep = tmp_path / "optuna"
    proc = _cli(["hparams_search=dcgan_optuna", *TINY, "logger=none", "hydra.sweeper.n_trials=3",
                 "hydra.sweeper.sampler.n_startup_trials=2", "optimized_metric=train/g_loss_epoch",
                 f"hydra.sweep.dir={sweep}"], tmp_path)
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
