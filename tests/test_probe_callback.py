"""ProbeCallback: schedule, rank zero, and a real 2-epoch run with offline W&B and files on disk."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate

from gan_interp.callbacks.probe_callback import ProbeCallback
from gan_interp.callbacks.schedule import EpochSchedule
from gan_interp.errors import ConfigError
from gan_interp.models import DCGAN
from gan_interp.probes.registry import PROBES, register_probe
from gan_interp.train import scheduled_callbacks, train
from gan_interp.wandb_inspect import find_runs, inspect_run

TINY = ["data=fake", "model.ngf=8", "model.ndf=8", "model.latent_dim=8", "callbacks=none"]


@pytest.fixture
def recorder():
    calls: list[dict] = []

    @register_probe("unit_recorder")
    def _probe(ctx) -> dict:
        epoch_dir = ctx.out.dir.parent.name  # <run>/probes/epoch_XXX
        grad = torch.is_grad_enabled()
        calls.append({"epoch_dir": epoch_dir, "training": ctx.model.training, "grad": grad, "seed": ctx.seed})
        return {}

    yield calls
    PROBES.pop("unit_recorder", None)


def _trainer(tmp_path, epoch: int, rank_zero: bool = True, fast_dev_run: bool = False):
    return SimpleNamespace(
        current_epoch=epoch,
        is_global_zero=rank_zero,
        fast_dev_run=fast_dev_run,
        default_root_dir=str(tmp_path),
        loggers=[],
        global_step=10 * epoch,
        datamodule=None,
    )


def test_schedule_epochs_every_n_and_train_end(tmp_path, recorder):
    cb = ProbeCallback(probes={"unit_recorder": {}}, schedule={"epochs": [0, 3], "every_n_epochs": 2}, seed=4)
    model = DCGAN(latent_dim=8, ngf=8, ndf=8, resolution=32).train()
    for epoch in range(5):
        cb.on_train_epoch_end(_trainer(tmp_path, epoch), model)
    cb.on_train_end(_trainer(tmp_path, 5), model)  # Lightning's current_epoch is past the last one here
    # 0-based: 0 and 3 listed; every 2nd epoch ends after epochs 1 and 3; the last epoch (4) at train end
    assert [c["epoch_dir"] for c in recorder] == ["epoch_000", "epoch_001", "epoch_003", "epoch_004"]
    assert all(not c["training"] and not c["grad"] and c["seed"] == 4 for c in recorder)  # eval mode, no_grad
    assert model.training  # restored
    assert [h["epoch"] for h in json.loads((tmp_path / "probes" / "timings.json").read_text())] == [0, 1, 3, 4]


def test_train_end_does_not_repeat_a_probed_last_epoch(tmp_path, recorder):
    cb = ProbeCallback(probes={"unit_recorder": {}}, schedule={"epochs": [1], "every_n_epochs": 0})
    model = DCGAN(latent_dim=8, ngf=8, ndf=8, resolution=32)
    for epoch in range(2):
        cb.on_train_epoch_end(_trainer(tmp_path, epoch), model)
    cb.on_train_end(_trainer(tmp_path, 2), model)
    assert [c["epoch_dir"] for c in recorder] == ["epoch_001"]


def test_only_rank_zero_and_not_under_fast_dev_run(tmp_path, recorder):
    model = DCGAN(latent_dim=8, ngf=8, ndf=8, resolution=32)
    for kwargs in ({"rank_zero": False}, {"fast_dev_run": True}):
        cb = ProbeCallback(probes={"unit_recorder": {}}, schedule={"epochs": [0]})
        cb.on_train_epoch_end(_trainer(tmp_path, 0, **kwargs), model)
        cb.on_train_end(_trainer(tmp_path, 1, **kwargs), model)
    assert recorder == []


def test_bad_config_fails_at_construction():
    with pytest.raises(ConfigError, match="not a known probe"):
        ProbeCallback(probes={"nope": {}}, schedule={"epochs": [0]})
    with pytest.raises(ConfigError, match=r"schedule.probes.epochs=\[-1\] must be a list of 0-based"):
        ProbeCallback(probes={}, schedule={"epochs": [-1]})


@pytest.mark.parametrize(
    "name",
    [
        "default",
        "all",
        "saliency",
        "activations",
        "traversals",
        "directions",
        "actmax",
        "filters",
        "neighbours",
        "members",
    ],
)
def test_probe_configs_instantiate(make_cfg, name):
    cfg = make_cfg([f"probes={name}", "metrics=none"])
    assert isinstance(instantiate(cfg.probes), ProbeCallback)
    [cb] = scheduled_callbacks(cfg)  # the probe set from probes=..., its schedule from schedule.probes
    assert isinstance(cb, ProbeCallback) and cb.probes
    assert cb.schedule == EpochSchedule(epochs=[0], every_n_epochs=0, at_end=True)  # conf/schedule/default.yaml
    if name not in ("default", "all"):
        assert list(cb.probes) == [name]


def test_default_probes_during_training_reach_wandb_and_disk(make_cfg, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cheap = [
        "probes.probes.actmax.steps=2",
        "probes.probes.directions.n_samples=16",
        "probes.probes.saliency.nt_samples=2",
        "probes.probes.traversals.dims=2",
    ]
    cfg = make_cfg([*TINY, "trainer.max_epochs=2", "logger=wandb", "probes=default", *cheap])
    train(cfg)
    probes_dir = Path(cfg.paths.output_dir) / "probes"
    # schedule.probes: epochs [0] plus at_end -> the first and the last (0-based 1) epoch
    assert sorted(p.name for p in probes_dir.glob("epoch_*")) == ["epoch_000", "epoch_001"]
    expected = set(cfg.probes.probes)
    for epoch_dir in probes_dir.glob("epoch_*"):
        record = json.loads((epoch_dir / "probes.json").read_text())
        summary = record["probes"]
        assert record["skipped"] == {"members": "model has no k-GAN members"}  # members: k-GAN only
        assert set(summary) == expected - {"members"} and not [k for k, v in summary.items() if "error" in v]
        for name in expected - {"members"}:
            assert list((epoch_dir / name).glob("*.png")) and (epoch_dir / name / "summary.json").is_file()
        assert not (epoch_dir / "members").exists()  # a skipped probe gets no folder
    assert (probes_dir / "epoch_000" / "saliency" / "real.png").is_file()

    run = inspect_run(find_runs(Path(cfg.paths.output_dir) / "wandb")[0])
    assert len(run.series("probes/time_s")) == 2 and all(t > 0 for t in run.series("probes/time_s"))
    probe_rows = [row for row in run.history if "probes/time_s" in row]  # one row per probe run, at its epoch
    assert [row["epoch"] for row in probe_rows] == [0, 1]
    for row in probe_rows:  # readings as scalars, images and tables in the same row
        assert isinstance(row["probes/directions/sefa/effect_ratio_vs_random"], float)
        assert isinstance(row["probes/activations/layers/G_8px/mean"], float)  # layers named by stage
        assert row["probes/saliency/real"]["caption"].startswith(f"epoch {row['epoch']}: ")
        assert "probes/actmax/reached" in row
    for key in (
        "probes/saliency/real",
        "probes/saliency/fake",
        "probes/traversals/z_dims",
        "probes/directions/sefa",
        "probes/filters/first_layer",
        "probes/actmax/units",
    ):
        assert len(run.series(key)) == 2, key  # one image per probed epoch
    assert len(run.image_files("probes/saliency/real")) == 2
    assert run.series("probes/actmax/reached"), "tables are logged too"
