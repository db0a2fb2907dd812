"""End-to-end training on tiny fake data: outputs, counters, loggers, offline W&B contents."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gan_interp.models import DCGAN
from gan_interp.train import build, train
from gan_interp.wandb_inspect import find_runs, inspect_run

TINY = ["data=fake", "model.ngf=8", "model.ndf=8", "model.latent_dim=16"]


@pytest.mark.parametrize("resolution", [32, 64])
def test_dcgan_fast_dev_run(make_cfg, resolution):
    cfg = make_cfg([*TINY, f"data.resolution={resolution}", "++trainer.fast_dev_run=true", "logger=none"])
    metrics = train(cfg)
    assert metrics["g_steps"] == 1.0


def test_dcgan_generator_contract_and_architecture():
    m = DCGAN(latent_dim=100, ngf=64, ndf=64, resolution=64)
    z = m.sample_z(3, generator=torch.Generator().manual_seed(0))
    assert z.shape == (3, 100)
    assert torch.equal(z, m.sample_z(3, generator=torch.Generator().manual_seed(0)))
    x = m.generate(z)
    assert x.shape == (3, 3, 64, 64) and x.min() >= -1 and x.max() <= 1
    assert m.critic(x).shape == (3,)
    first = m.generator.blocks[0][0]
    assert first.weight.shape == (100, 512, 4, 4)  # ngf*8 at 4x4 (Radford et al.)
    assert abs(first.weight.std().item() - 0.02) < 0.002  # N(0, 0.02) init
    assert torch.equal(m.fixed_latents(4), m.fixed_latents(4))
    for res, channels in [(32, 256), (128, 1024)]:
        assert DCGAN(resolution=res).generator.blocks[0][0].weight.shape[1] == channels


def test_two_epochs_write_checkpoints_samples_and_an_offline_wandb_run(make_cfg, tmp_path, capsys):
    cfg = make_cfg([*TINY, "trainer.max_epochs=2", "logger=wandb", "run_name=unit-run", "tags=[unit,test]"])
    metrics = train(cfg)
    run = Path(cfg.paths.output_dir)
    end = capsys.readouterr().out.strip().splitlines()[-5:]  # the last thing a run prints: where to look next
    assert end[0].startswith(f"finished: {int(metrics['g_steps'])} generator steps in ")
    assert end[1:4] == [
        f"  run dir:     {run}",
        f"  samples:     {run / 'samples' / 'epoch_001.png'}",
        f"  review page: python -m gan_interp.report {run}",
    ]
    offline = find_runs(run / "wandb")[0]
    assert end[4] == f"  W&B:         wandb sync {offline}   (offline run; needs network and a W&B login)"
    steps_per_epoch = 48 // 16  # 64 fake images, 12.5% val + 12.5% test held out, batch 16, drop_last
    assert metrics["g_steps"] == 2 * steps_per_epoch
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["g_steps"] == 2 * steps_per_epoch
    assert ckpt["global_step"] == 2 * 2 * steps_per_epoch  # Lightning counts D and G optimizer steps
    # default policy: last.ckpt every epoch, epoch_XXX.ckpt every 5th (none in 2 epochs), no best.ckpt
    assert {p.name for p in (run / "checkpoints").glob("*.ckpt")} == {"last.ckpt"}
    assert ckpt["epoch"] == 1 and not (run / "checkpoints" / "last.ckpt").is_symlink()
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == ["epoch_000.png", "epoch_001.png"]
    assert (run / "data_split.json").is_file() and (run / "metrics.json").is_file()

    runs = find_runs(run / "wandb")
    assert len(runs) == 1
    logged = inspect_run(runs[0])
    assert logged.name == "unit-run" and logged.group == "unit-run" and logged.tags == ["unit", "test", "seed=0"]
    d_losses = logged.series("train/d_loss_epoch")
    assert len(d_losses) == 2 and all(v == v and v > 0 for v in d_losses)  # finite, positive
    assert len(logged.series("train/g_loss_epoch")) == 2
    assert logged.series("samples/fixed_z"), "sample grids must be logged as images"
    assert len(logged.image_files("samples")) == 2
    # one x-axis: every row carries epoch and g_steps; samples are placed by epoch (not optimizer steps)
    assert all("epoch" in row and "g_steps" in row for row in logged.history)
    samples = [row for row in logged.history if "samples/fixed_z" in row]
    assert [(row["epoch"], row["g_steps"]) for row in samples] == [(0, steps_per_epoch), (1, 2 * steps_per_epoch)]
    assert [row["samples/fixed_z"]["caption"].split(":")[0] for row in samples] == ["epoch 0", "epoch 1"]
    assert logged.metrics["samples/*"]["step_metric"] == "epoch"
    assert logged.metrics["train/*"]["step_metric"] == "trainer/global_step"
    assert logged.config["model"]["name"] == "dcgan"


def test_resume_continues_the_generator_step_counter(make_cfg, tmp_path):
    cfg = make_cfg([*TINY, "trainer.max_epochs=1", "logger=none"])
    train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    cfg2 = make_cfg(
        [*TINY, "trainer.max_epochs=2", "logger=none", f"ckpt_path={last}", f"paths.output_dir={tmp_path}/run2"]
    )
    assert train(cfg2)["g_steps"] == 6.0


@pytest.mark.parametrize("logger, expect", [("tensorboard", "tensorboard"), ("csv", "csv/metrics.csv"), ("none", None)])
def test_other_loggers(make_cfg, logger, expect):
    cfg = make_cfg([*TINY, "trainer.max_epochs=1", f"logger={logger}"])
    _, _, trainer = build(cfg)
    kinds = [type(lg).__name__ for lg in trainer.loggers]
    train(cfg)
    run = Path(cfg.paths.output_dir)
    if expect is None:
        assert kinds == [] and not (run / "wandb").exists()
    elif expect == "tensorboard":
        assert kinds == ["TensorBoardLogger"] and list((run / "tensorboard").rglob("events.out.tfevents*"))
    else:
        text = (run / expect).read_text()
        assert "train/d_loss_epoch" in text.splitlines()[0]
