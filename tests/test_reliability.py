"""Reliability: divergence stops cleanly, bad output dirs fail fast, sweeps survive a crashing job; the checkpoint
policy, atomic writes and a full disk; SIGTERM/SIGINT from the command line."""

from __future__ import annotations

import errno
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from gan_interp.callbacks.checkpointing import AtomicCheckpointIO, DiskFull
from gan_interp.callbacks.guards import TrainingDiverged, preflight_output_dir
from gan_interp.errors import GanInterpError
from gan_interp.models import DCGAN
from gan_interp.report import build_report
from gan_interp.train import build, failure_record, record_failure
from gan_interp.wandb_inspect import find_runs, inspect_run

TINY = ["data=fake", "model.ngf=8", "model.ndf=8", "model.latent_dim=16", "logger=none"]
NO_PROBES = ["probes=none", "metrics=none"]  # checkpoint/signal tests: training only


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


# -- disk: checkpoint policy, atomic writes, free space before every checkpoint --------------------------
class ScoreAt(L.Callback):
    """Puts a made-up epoch metric into callback_metrics (what MetricsCallback does with metrics/<name>)."""

    def __init__(self, scores: dict[int, float]) -> None:
        self.scores = scores

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch in self.scores:
            trainer.callback_metrics["metrics/score"] = torch.tensor(self.scores[trainer.current_epoch])


def test_checkpoint_policy_keeps_last_every_nth_epoch_and_the_best(make_cfg):
    cfg = make_cfg(
        [
            *TINY,
            *NO_PROBES,
            "trainer.max_epochs=5",
            "callbacks.model_checkpoint.every_n_epochs=2",
            "callbacks.best_checkpoint.monitor=metrics/score",
        ]
    )
    datamodule, model, trainer = build(cfg)
    trainer.callbacks.append(ScoreAt({0: 3.0, 1: 1.0, 3: 2.0}))  # epochs 2 and 4: not computed -> best kept
    trainer.fit(model, datamodule=datamodule)
    ckpts = Path(cfg.paths.output_dir) / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["best.ckpt", "epoch_001.ckpt", "epoch_003.ckpt", "last.ckpt"]
    epoch_of = {p.name: torch.load(p, map_location="cpu", weights_only=True)["epoch"] for p in ckpts.iterdir()}
    assert epoch_of == {"best.ckpt": 1, "epoch_001.ckpt": 1, "epoch_003.ckpt": 3, "last.ckpt": 4}
    assert not (ckpts / "last.ckpt").is_symlink()  # epoch 4 kept no epoch file: last.ckpt is its own file


def test_default_policy_keeps_last_and_every_5th_epoch_and_links_last_to_a_kept_epoch(make_cfg):
    cfg = make_cfg([*TINY, *NO_PROBES, "trainer.max_epochs=5"])  # default: every 5th epoch, no best
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    ckpts = Path(cfg.paths.output_dir) / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["epoch_004.ckpt", "last.ckpt"]
    assert os.readlink(ckpts / "last.ckpt") == "epoch_004.ckpt"  # no second copy of the same state
    assert cfg.callbacks.best_checkpoint.monitor is None


def test_mid_epoch_checkpoints_refresh_last(make_cfg):
    cfg = make_cfg([*TINY, *NO_PROBES, "trainer.max_epochs=1", "callbacks.model_checkpoint.every_n_train_steps=2"])
    datamodule, model, trainer = build(cfg)
    saved_steps = []
    original = trainer.strategy.checkpoint_io.save_checkpoint
    trainer.strategy.checkpoint_io.save_checkpoint = lambda ckpt, path, **kw: (
        saved_steps.append((Path(path).name, ckpt["global_step"])),
        original(ckpt, path, **kw),
    )
    trainer.fit(model, datamodule=datamodule)
    assert saved_steps == [("last.ckpt", 2), ("last.ckpt", 4), ("last.ckpt", 6)]  # 3 batches of 2 optimizer steps


def test_a_write_that_fills_the_disk_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    io = AtomicCheckpointIO(reserve_mb=0)
    dest = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"w": torch.ones(1000)}, dest)
    good = dest.read_bytes()

    def half_then_full(obj, path):  # what a full disk does to torch.save: part of the file, then an error
        Path(path).write_bytes(good[: len(good) // 2])
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(torch, "save", half_then_full)
    monkeypatch.setattr("gan_interp.callbacks.checkpointing.free_mb", lambda path: 0.0)
    with pytest.raises(DiskFull) as err:
        io.save_checkpoint({"w": torch.zeros(1000)}, dest)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"only 0 MiB free at {dest.parent} for last.ckpt")
    assert f"last good checkpoint: {dest}" in msg and f"resume with ckpt_path={dest}" in msg
    assert dest.read_bytes() == good and [p.name for p in dest.parent.iterdir()] == ["last.ckpt"]  # no partial file


def test_too_little_space_for_the_next_checkpoint_writes_nothing(tmp_path, monkeypatch):
    io = AtomicCheckpointIO(reserve_mb=100)
    monkeypatch.setattr("gan_interp.callbacks.checkpointing.free_mb", lambda path: 50.0)
    with pytest.raises(DiskFull, match=r"only 50 MiB free at .* \(needs ~4 MiB \+ 100 MiB reserve\); no checkpoint"):
        io.save_checkpoint({"w": torch.zeros(2**20)}, tmp_path / "ckpt" / "epoch_000.ckpt")
    assert list((tmp_path / "ckpt").iterdir()) == []


def test_failure_json_is_complete_or_absent_never_empty(tmp_path, monkeypatch):
    cfg = OmegaConf.create({"paths": {"output_dir": str(tmp_path)}})

    def disk_full(self, data):
        self.open("wb").close()  # the file exists, empty, when the disk refuses the bytes
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    assert record_failure(cfg, ValueError("boom")) is None
    assert list(tmp_path.iterdir()) == []  # no 0-byte failure.json, no temp file
    monkeypatch.undo()
    out = record_failure(cfg, ValueError("boom"))
    assert json.loads(out.read_text())["error"] == "ValueError: boom"
    ctrl_c = failure_record(cfg, KeyboardInterrupt())  # Ctrl-C outside the training steps
    assert ctrl_c["reason"] == "interrupted" and ctrl_c["signal"] == "SIGINT" and ctrl_c["checkpoint"] is None


def _py(script: str, args: list[str], cwd: Path, timeout: int = 600):
    """``python -c script args...`` with the CLI's environment (a patched entry point)."""
    env = {**os.environ, "WANDB_MODE": "offline", "GAN_INTERP_CACHE": str(Path(cwd) / "cache")}
    cmd = [sys.executable, "-c", script, *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


DISK_FILLS_AFTER_FIRST_CHECKPOINT = """
import sys
from gan_interp import train
from gan_interp.callbacks import checkpointing
real, calls = checkpointing.free_mb, []
def filling(path):
    calls.append(path)
    return real(path) if len(calls) == 1 else 3.0
checkpointing.free_mb = filling
sys.argv = ["gan_interp.train", *sys.argv[1:]]
train.main()
"""


def test_cli_disk_full_before_a_checkpoint_is_one_line_exit_2_and_nothing_truncated(tmp_path):
    run = tmp_path / "run"
    proc = _py(
        DISK_FILLS_AFTER_FIRST_CHECKPOINT, [*TINY, *NO_PROBES, "trainer.max_epochs=3", f"hydra.run.dir={run}"], tmp_path
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    ckpts = run / "checkpoints"
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: only 3 MiB free at {ckpts} for last.ckpt (needs ~0 MiB + 200 MiB reserve)")
    assert line.endswith(
        f"last good checkpoint: {ckpts / 'last.ckpt'}; free disk space (or lower min_free_disk_mb) "
        f"and resume with ckpt_path={ckpts / 'last.ckpt'}"
    )
    assert "Traceback" not in proc.stderr
    assert [p.name for p in ckpts.iterdir()] == ["last.ckpt"]  # no temp file, nothing half-written
    assert torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)["epoch"] == 0  # epoch 0: intact
    record = json.loads((run / "failure.json").read_text())
    assert record["reason"] == "error" and "MiB free" in record["error"]
    assert not (run / "metrics.json").exists()


# -- signals: SIGTERM / SIGINT from the command line ---------------------------------------------------
SIGNAL_AT_STEP = """
import os, signal, sys
import lightning as L
from gan_interp import train, training

class SignalAt(L.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == 2:  # epoch 0, batch 1
            os.kill(os.getpid(), signal.{sig})

base = training.scheduled_callbacks
training.scheduled_callbacks = lambda cfg: [*base(cfg), SignalAt()]
sys.argv = ["gan_interp.train", *sys.argv[1:]]
train.main()
"""


@pytest.mark.parametrize(
    "sig, code, logger",
    [("SIGTERM", 143, "none"), ("SIGINT", 130, "wandb")],  # SIGTERM: then resumed; SIGINT: the W&B run's mark
)
def test_cli_signal_saves_a_checkpoint_records_the_resume_command_and_exits_128_plus_signal(
    tmp_path, sig, code, logger
):
    tiny = [a for a in TINY if not a.startswith("logger=")]
    args = [*tiny, "trainer.max_epochs=2", *NO_PROBES, f"logger={logger}", "run_name=sig"]
    run = tmp_path / "run"
    proc = _py(SIGNAL_AT_STEP.format(sig=sig), [*args, f"hydra.run.dir={run}"], tmp_path)
    assert proc.returncode == code, proc.stderr[-3000:]
    ckpt = run / "checkpoints" / "last.ckpt"
    record = json.loads((run / "failure.json").read_text())
    resume = f"python -m gan_interp.train {' '.join(args)} hydra.run.dir={run} ckpt_path={ckpt}"
    assert record == {
        "reason": "interrupted",
        "error": f"interrupted by {sig} at epoch 0, step 4; saved {ckpt}",
        "signal": sig,
        "exit_code": code,
        "epoch": 0,
        "global_step": 4,
        "checkpoint": str(ckpt),
        "resume": resume,
        "overrides": args,
    }
    assert proc.stderr.strip().splitlines()[-1] == f"{record['error']}; resume: {resume}"
    assert "Traceback" not in proc.stderr and not (run / "metrics.json").exists()
    assert "<p>Status: <span class=interrupted>interrupted</span></p>" in build_report(run)  # the review page
    if logger == "wandb":
        (wandb_run,) = find_runs(run / "wandb")
        assert inspect_run(wandb_run).exit_code == code  # the W&B run is marked as failed
        return
    resumed = subprocess.run(
        [sys.executable, *shlex.split(resume)[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "WANDB_MODE": "offline", "GAN_INTERP_CACHE": str(tmp_path / "cache")},
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text())["g_steps"] == 6.0
    assert not (run / "failure.json").exists()  # the run finished: no longer shown as interrupted


SIGTERM_BEFORE_FIT = """
import os, signal, sys, time
from gan_interp import train, training

real_build = training.build
def terminated_while_building(cfg):  # before trainer.fit: Lightning's own SIGTERM handler is not set yet
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
    return real_build(cfg)

training.build = terminated_while_building
sys.argv = ["gan_interp.train", *sys.argv[1:]]
train.main()
"""


def test_cli_sigterm_outside_the_training_steps_is_recorded_and_exits_143(tmp_path):
    run = tmp_path / "run"
    proc = _py(SIGTERM_BEFORE_FIT, [*TINY, *NO_PROBES, "trainer.max_epochs=1", f"hydra.run.dir={run}"], tmp_path)
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert (
        proc.stderr.strip().splitlines()[-1] == "interrupted by SIGTERM outside the training steps; no checkpoint saved"
    )
    record = json.loads((run / "failure.json").read_text())
    assert record["reason"] == "interrupted" and record["signal"] == "SIGTERM" and record["checkpoint"] is None
    assert not (run / "checkpoints").exists() and not (run / "metrics.json").exists()


# -- one-line errors: bad resume checkpoints, third-party config complaints, no run dir left by a failed check ----
def _one_line_exit_2(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stdout, proc.stderr[-2000:]
    assert lines[0].startswith("error: ")
    return lines[0]


def test_cli_bad_ckpt_path_is_one_line_exit_2_and_leaves_no_run_dir(tmp_path):
    (tmp_path / "random.ckpt").write_bytes(os.urandom(2048))
    other = DCGAN(latent_dim=16, ngf=4, ndf=4)  # another model size than TINY's ngf=8
    torch.save({"state_dict": other.state_dict(), "epoch": 0, "global_step": 1}, tmp_path / "other.ckpt")
    expected = {
        "missing.ckpt": "does not exist; pass a checkpoint file such as <run>/checkpoints/last.ckpt",
        "random.ckpt": "is not a readable PyTorch checkpoint (UnpicklingError)",
        "other.ckpt": "does not fit model dcgan of this config (",
    }
    for name, message in expected.items():
        run = tmp_path / f"run_{name}"
        proc = _cli([*TINY, f"ckpt_path={tmp_path / name}", f"hydra.run.dir={run}"], tmp_path)
        line = _one_line_exit_2(proc)
        assert line.startswith(f"error: ckpt_path={tmp_path / name} ") and message in line, line
        assert not run.exists()  # failed before training: no folder holding only .hydra
    assert "generator." in line and "has shape [" in line and "resume with the model.* settings" in line


def test_cli_errors_inside_hydra_instantiate_are_one_line_exit_2(tmp_path):
    proc = _cli([*TINY, "model=kgan", "model.k=0", f"hydra.run.dir={tmp_path / 'k0'}"], tmp_path)
    assert _one_line_exit_2(proc) == "error: model.k=0 must be >= 1"
    assert not (tmp_path / "k0").exists()
    if torch.cuda.is_available():
        return  # trainer=gpu is valid there
    proc = _cli([*TINY, "trainer=gpu", f"hydra.run.dir={tmp_path / 'gpu'}"], tmp_path)
    line = _one_line_exit_2(proc)
    assert line.startswith("error: trainer.accelerator=gpu is not available on this machine (")
    assert line.endswith("; use trainer=cpu or trainer.accelerator=auto")


def test_third_party_config_errors_map_to_config_errors_and_others_stay():
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from gan_interp.config import third_party_config_error

    gpu = OmegaConf.create({"accelerator": "gpu"})
    err = third_party_config_error(MisconfigurationException("No supported gpu backend found!"), gpu)
    assert str(err) == (
        "trainer.accelerator=gpu is not available on this machine (No supported gpu backend found!); "
        "use trainer=cpu or trainer.accelerator=auto"
    )
    err = third_party_config_error(MisconfigurationException("bad devices\nmore"), OmegaConf.create({}))
    assert str(err) == "bad devices (Lightning rejected the trainer config; check the trainer.* overrides)"
    assert third_party_config_error(RuntimeError("boom"), gpu) is None  # unexpected: stays a traceback


def test_state_dict_mismatch_names_the_first_difference():
    from gan_interp.checkpoints import state_dict_mismatch

    model = {"a": torch.zeros(2, 3), "b": torch.zeros(1)}
    assert state_dict_mismatch(dict(model), model) is None
    assert state_dict_mismatch({"a": torch.zeros(2, 3)}, model) == "missing weight b"
    assert state_dict_mismatch({**model, "a": torch.zeros(4, 3)}, model) == "a has shape [4, 3], the model needs [2, 3]"
    assert state_dict_mismatch({**model, "c": torch.zeros(1)}, model) == "unexpected weight c"


def test_only_a_run_dir_without_training_output_is_removed(tmp_path):
    from gan_interp.train import remove_unused_run_dir

    failed = tmp_path / "failed"
    (failed / ".hydra").mkdir(parents=True)
    (failed / "train.log").write_text("x")
    (failed / "failure.json").write_text("{}")
    assert remove_unused_run_dir(failed) and not failed.exists()
    trained = tmp_path / "trained"
    (trained / ".hydra").mkdir(parents=True)
    (trained / "checkpoints").mkdir()
    assert not remove_unused_run_dir(trained) and (trained / "checkpoints").is_dir()
    assert not remove_unused_run_dir(tmp_path / "absent")


# -- fast answers: --help and config typos before torch/Lightning are imported ------------------------------------
def test_train_module_imports_no_torch_and_still_exposes_the_job():
    code = (
        "import sys, gan_interp.train as t; print('torch' in sys.modules, 'lightning' in sys.modules); "
        "print(t.build.__module__, t.failure_record.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.split() == ["False", "False", "gan_interp.training", "gan_interp.training"]


def test_cli_help_lists_the_config_groups_and_creates_no_folder(tmp_path):
    proc = _cli(["--help"], tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("usage: python -m gan_interp.train [-m]")
    assert (
        "  model: dcgan, dcgan_stable, kgan, stylegan_lite, stylegan_lite_cpu\n" in proc.stdout
        and "  hydra:" not in proc.stdout
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_cli_key_typo_is_one_line_exit_2_and_creates_no_folder(tmp_path):
    proc = _cli(["trainer.max_epoch=3"], tmp_path)
    assert _one_line_exit_2(proc) == (
        "error: trainer.max_epoch is not a key of the config; check its spelling "
        "(python -m gan_interp.train --cfg job lists the keys) or add it with +trainer.max_epoch=3"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_cli_normal_run_prints_no_known_third_party_noise(tmp_path):
    # Lightning's pytree deprecation and litlogger tip are filtered at the source (gan_interp.third_party);
    # wandb's "anonymous setting has no effect" is not provoked (logging_utils.make_wandb_logger)
    proc = _cli([*TINY, "logger=wandb", *NO_PROBES, "trainer.max_epochs=1", f"hydra.run.dir={tmp_path}/run"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for noise in ("LeafSpec", "litlogger", "Tip:", "anonymous"):
        assert noise not in proc.stderr and noise not in proc.stdout, noise
