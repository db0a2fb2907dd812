"""Multirun sweeps: joblib launcher, one W&B run per job in one group, Optuna search, SLURM config."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from gan_interp.wandb_inspect import find_runs, inspect_run

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
    runs = [inspect_run(p) for p in find_runs(sweep)]
    assert len(runs) == 2
    assert sorted(r.name for r in runs) == ["dcgan-fake-s0", "dcgan-fake-s1"]  # the name shows the seed already
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime((sweep / "multirun.yaml").stat().st_mtime))
    assert {r.group for r in runs} == {f"seed:0,1-{stamp}"}  # one group per sweep, named after it
    assert sorted(r.tags[-1] for r in runs) == ["seed=0", "seed=1"]
    assert all(r.series("train/d_loss_epoch") for r in runs)


def _job(tmp_path: Path, task: list[str], cli: list[str] | None, params: dict | None = None, experiment=None):
    """A multirun job's HydraConfig stand-in: its task overrides, the sweep's multirun.yaml and params."""
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    sweep = tmp_path / "sweep"
    sweep.mkdir(exist_ok=True)
    if cli is not None:
        OmegaConf.save(OmegaConf.create({"hydra": {"overrides": {"task": cli}}}), sweep / "multirun.yaml")
        os.utime(sweep / "multirun.yaml", (1_700_000_000, 1_700_000_000))
    hydra_cfg = OmegaConf.create(
        {
            "sweep": {"dir": str(sweep)},
            "sweeper": {"params": params},
            "overrides": {"task": task},
            "runtime": {"choices": {"experiment": experiment, "hparams_search": None}},
        }
    )
    hydra_cfg.mode = RunMode.MULTIRUN
    return hydra_cfg


def _cfg(run_name: str, seed: int, group=None):
    from omegaconf import OmegaConf

    return OmegaConf.create({"run_name": run_name, "seed": seed, "tags": ["dcgan", "fake"], "group": group})


def test_run_identity_names_and_tags_carry_the_swept_overrides_and_the_group_the_sweep(tmp_path):
    from gan_interp.run_identity import run_identity

    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(1_700_000_000))
    job = _job(tmp_path, ["data=fake", "seed=1", "model.lr=1e-4"], ["data=fake", "seed=0,1", "model.lr=1e-4,2e-4"])
    ident = run_identity(_cfg("dcgan-fake-s1", 1), job)
    assert ident.name == "dcgan-fake-s1 model.lr=1e-4"  # seed: shown as s1 already
    assert ident.tags == ("dcgan", "fake", "seed=1", "model.lr=1e-4")
    assert ident.group == f"seed:0,1 model.lr:1e-4,2e-4-{stamp}"  # the sweep, then its launch time


def test_run_identity_of_an_experiment_sweep_an_explicit_group_and_a_single_run(tmp_path):
    from gan_interp.run_identity import run_identity

    params = {"model": "dcgan,stylegan_lite,kgan", "seed": "0,1"}
    job = _job(tmp_path, ["experiment=arch_compare", "model=kgan", "seed=0"], [], params, "arch_compare")
    ident = run_identity(_cfg("kgan-fake-s0", 0), job)
    assert ident.name == "kgan-fake-s0" and ident.tags == ("dcgan", "fake", "seed=0", "model=kgan")
    assert ident.group.startswith("arch_compare-")
    assert run_identity(_cfg("kgan-fake-s0", 0, group="mine"), job).group == "mine"  # group= wins
    single = run_identity(_cfg("dcgan-fake-s3", 3), None)
    assert (single.name, single.group, single.tags) == ("dcgan-fake-s3", "dcgan-fake-s3", ("dcgan", "fake", "seed=3"))


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
