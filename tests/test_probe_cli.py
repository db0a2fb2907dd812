"""The probe CLI on saved checkpoints: same outputs as the callbacks, safe loading, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import compose_config
from omegaconf import OmegaConf

from gan_interp.checkpoints import load_checkpoint
from gan_interp.errors import ConfigError
from gan_interp.probe_checkpoint import probe_checkpoint
from gan_interp.train import train

TINY = ["data=fake", "model.ngf=8", "model.ndf=8", "model.latent_dim=16"]
METRICS = [
    "metrics=default",
    "metrics.n=24",
    "metrics.metrics.c2st.epochs=1",
    "+metrics.metrics.c2st.min_steps=5",
    "metrics.metrics.mmd.n_permutations=20",
]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A 2-epoch tiny DCGAN run whose MetricsCallback evaluated epoch 0 (and the end); every epoch's checkpoint kept."""
    tmp = tmp_path_factory.mktemp("probe_cli")
    every_epoch = "callbacks.model_checkpoint.every_n_epochs=1"
    cfg = compose_config(
        tmp,
        [
            *TINY,
            "trainer.max_epochs=2",
            "logger=none",
            "probes=none",
            *METRICS,
            "schedule.metrics.epochs=[0]",
            every_epoch,
        ],
    )
    train(cfg)
    return Path(cfg.paths.output_dir)


def _probe_cfg(tmp: Path, overrides: list[str]):
    """conf/probe_checkpoint.yaml composed with every path inside ``tmp`` (as conftest does for train.yaml)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from gan_interp.paths import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(
            config_name="probe_checkpoint",
            overrides=[
                f"paths.output_dir={tmp / 'probe_out'}",
                f"paths.cache_dir={tmp / 'cache'}",
                f"paths.data_dir={tmp / 'data'}",
                f"paths.root_dir={tmp}",
                *overrides,
            ],
        )


def test_metrics_of_a_checkpoint_equal_the_callbacks_and_probes_are_written(trained, tmp_path) -> None:
    cfg = _probe_cfg(tmp_path, [f"ckpt_path={trained / 'checkpoints' / 'epoch_000.ckpt'}", "probes=filters", *METRICS])
    result = probe_checkpoint(cfg, explicit_paths=set())
    assert result["epoch"] == 0 and result["name"] == "ckpt_epoch_000"
    written = json.loads((trained / "metrics" / "ckpt_epoch_000.json").read_text())
    callback = json.loads((trained / "metrics" / "epoch_000.json").read_text())
    assert written["epoch"] == 0 and set(written["values"]) == set(callback["values"])
    for k, v in callback["values"].items():  # same model, seed and settings -> the callback's numbers
        assert written["values"][k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
    summary = json.loads((trained / "probes" / "ckpt_epoch_000" / "filters" / "summary.json").read_text())
    assert "time_s" in summary and "error" not in summary
    assert list((trained / "probes" / "ckpt_epoch_000" / "filters").glob("*.png"))
    assert (trained / "probes" / "ckpt_epoch_000" / "probes.json").is_file()


def test_out_dir_gets_the_callback_layout_and_hydra_config_is_used(trained, tmp_path) -> None:
    hydra_dir = trained / ".hydra"
    hydra_dir.mkdir(exist_ok=True)
    resolved = json.loads((trained / "config_resolved.json").read_text())
    resolved["paths"]["root_dir"] = (
        "${oc.env:GAN_INTERP_ROOT_UNSET_FOR_TEST,/nonexistent}"  # an interpolation: taken from the CLI
    )
    OmegaConf.save(OmegaConf.create(resolved), hydra_dir / "config.yaml")
    try:
        out = tmp_path / "look"
        cfg = _probe_cfg(
            tmp_path, [f"ckpt_path={trained / 'checkpoints' / 'last.ckpt'}", f"out_dir={out}", "probes=none", *METRICS]
        )
        result = probe_checkpoint(cfg, explicit_paths=set())
    finally:
        (hydra_dir / "config.yaml").unlink()
    assert result["epoch"] == 1
    values = json.loads((out / "metrics" / "epoch_001.json").read_text())["values"]
    assert {"mmd2", "c2st_accuracy", "quality_tv_fake"} <= set(values)
    assert json.loads((out / "checkpoint.json").read_text())["epoch"] == 1
    assert json.loads((out / "config_resolved.json").read_text())["model"]["name"] == "dcgan"
    assert not (out / "probes").exists()


def test_checkpoint_loading_is_weights_only_and_errors_are_one_line(trained, tmp_path) -> None:
    ckpt = load_checkpoint(trained / "checkpoints" / "epoch_000.ckpt")
    assert "state_dict" in ckpt and ckpt["epoch"] == 0
    # an older checkpoint whose hyperparameters are OmegaConf containers: allow-listed data classes
    old = dict(ckpt, hyper_parameters={"betas": OmegaConf.create([0.5, 0.999])})
    torch.save(old, tmp_path / "old.ckpt")
    assert list(load_checkpoint(tmp_path / "old.ckpt")["hyper_parameters"]["betas"]) == [0.5, 0.999]
    # arbitrary objects are refused unless trusted
    torch.save({"state_dict": {}, "evil": Path("/x")}, tmp_path / "obj.ckpt")
    with pytest.raises(ConfigError, match="trust_checkpoint=true"):
        load_checkpoint(tmp_path / "obj.ckpt")
    assert load_checkpoint(tmp_path / "obj.ckpt", trust=True)["evil"] == Path("/x")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(tmp_path / "junk.ckpt")
    with pytest.raises(ConfigError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.ckpt")
    stray = tmp_path / "a" / "b" / "x.ckpt"
    stray.parent.mkdir(parents=True)
    stray.write_bytes((trained / "checkpoints" / "epoch_000.ckpt").read_bytes())
    with pytest.raises(ConfigError, match="no training config next to it"):
        probe_checkpoint(
            _probe_cfg(tmp_path, [f"ckpt_path={stray}", "probes=none", "metrics=none"]), explicit_paths=set()
        )


def test_threads_option_and_outputs_named_after_the_checkpoint_epoch(trained, tmp_path, monkeypatch) -> None:
    set_to = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: set_to.append(n))
    last = trained / "checkpoints" / "last.ckpt"
    cfg = _probe_cfg(tmp_path, [f"ckpt_path={last}", "probes=filters", "metrics=none", "threads=1"])
    result = probe_checkpoint(cfg, explicit_paths=set())
    epoch = load_checkpoint(last)["epoch"]
    assert result["name"] == f"ckpt_epoch_{epoch:03d}" and set_to == [1]  # not ckpt_last
    assert (trained / "probes" / f"ckpt_epoch_{epoch:03d}" / "filters" / "summary.json").is_file()
    bad = _probe_cfg(tmp_path, [f"ckpt_path={last}", "probes=none", "metrics=none", "threads=0"])
    with pytest.raises(ConfigError, match=r"^threads=0 must be >= 1 \(or null for torch's default\)$"):
        probe_checkpoint(bad, explicit_paths=set())


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, GAN_INTERP_ROOT=str(cwd), WANDB_MODE="offline", OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "gan_interp.probe_checkpoint", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_missing_checkpoint_is_a_one_line_error(tmp_path) -> None:
    proc = _cli([f"ckpt_path={tmp_path / 'nope.ckpt'}"], tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ckpt_path=") and "does not exist" in lines[0]
    proc = _cli([], tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: ckpt_path is required: python -m gan_interp.probe_checkpoint ckpt_path=<run>/checkpoints/last.ckpt"
    ]


@pytest.mark.slow  # a fresh interpreter + Hydra app: ~8 s; the in-process tests above cover the logic
def test_cli_runs_on_a_checkpoint(trained, tmp_path) -> None:
    out = tmp_path / "cli_out"
    proc = _cli(
        [f"ckpt_path={trained / 'checkpoints' / 'epoch_001.ckpt'}", f"out_dir={out}", "probes=filters", *METRICS],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert printed["epoch"] == 1 and "mmd2" in printed["metrics"]
    assert (out / "metrics" / "epoch_001.json").is_file()
    assert (out / "probes" / "epoch_001" / "filters" / "summary.json").is_file()
    assert list(
        (tmp_path / "outputs" / "probe" / "runs").glob("*/.hydra/config.yaml")
    )  # Hydra's own record of the call


def test_probe_run_joins_its_training_runs_group_and_names_the_checkpoint_artifact(tmp_path) -> None:
    from gan_interp.wandb_inspect import find_runs, inspect_run

    train_cfg = compose_config(tmp_path, [*TINY, "trainer.max_epochs=1", "logger=wandb", "probes=none", "metrics=none"])
    train(train_cfg)
    trained = Path(train_cfg.paths.output_dir)
    (training,) = [inspect_run(p) for p in find_runs(trained / "wandb")]
    cfg = _probe_cfg(tmp_path, [f"ckpt_path={trained / 'checkpoints' / 'last.ckpt'}", "probes=filters", "metrics=none"])
    result = probe_checkpoint(cfg, explicit_paths=set())
    (probe_dir,) = find_runs(trained / "probe_runs" / "ckpt_epoch_000")
    assert result["wandb_run"] == str(probe_dir)
    probe = inspect_run(probe_dir)
    assert (probe.job_type, probe.group, probe.exit_code) == ("probe", training.group, 0)
    link = probe.config["checkpoint"]
    assert link["artifact"] == f"model-{training.run_id}:last"  # the version the training run logged (offline: config)
    assert link["training_run_id"] == training.run_id and link["checkpoint"].endswith("last.ckpt")
    assert "probes/filters/mean_neutral_share" in probe.history_keys and probe.summary["epoch"] == 0
    assert [a["name"] for a in training.artifacts if a["type"] == "model"] == [f"model-{training.run_id}"]
