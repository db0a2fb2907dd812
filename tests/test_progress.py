"""One-line progress: the shared helper and the training callback, with a fake clock (no timed tests)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch

from gan_interp.callbacks.progress import ProgressLog
from gan_interp.errors import ConfigError
from gan_interp.progress import ENV_EVERY_S, Progress, default_every_s, format_duration, track


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def messages(caplog, name: str, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name and r.levelno == level]


def test_format_duration():
    assert [format_duration(s) for s in (0, 42.4, 187, 7500)] == ["0s", "42s", "3m07s", "2h05m"]


def test_progress_rate_limits_lines_and_logs_a_final_line(caplog):
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    progress = Progress(100, "decode cache", every_s=30, unit="images", clock=clock)
    for _ in range(10):  # 10 items at 5 s each: 50 s -> exactly one line, at 30 s
        clock.t += 5
        progress.update(1)
    assert messages(caplog, "gan_interp.progress") == ["decode cache: 6/100 images (6%) 30s elapsed, ETA 7m50s"]
    clock.t += 25
    progress.update(90)  # 75 s after start, 45 s after the last line
    clock.t += 5
    progress.close()
    progress.close()  # idempotent
    assert messages(caplog, "gan_interp.progress") == [
        "decode cache: 6/100 images (6%) 30s elapsed, ETA 7m50s",
        "decode cache: 100/100 images (100%) 1m15s elapsed, ETA 0s",
        "decode cache: done, 100 images in 1m20s",
    ]


def test_short_jobs_log_their_final_line_at_debug_and_early_exits_say_stopped(caplog):
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    with Progress(3, "fid fakes", every_s=30, clock=clock) as progress:
        clock.t += 2
        progress.update(3)
    assert messages(caplog, "gan_interp.progress") == []
    assert messages(caplog, "gan_interp.progress", logging.DEBUG) == ["fid fakes: done, 3 in 2s"]
    with pytest.raises(KeyboardInterrupt), Progress(10, "permutations", every_s=30, min_s=1, clock=clock) as progress:
        clock.t += 4
        progress.update(4)
        raise KeyboardInterrupt
    assert messages(caplog, "gan_interp.progress")[-1] == "permutations: stopped at 4/10 (40%) after 4s"


def test_track_and_unknown_totals(caplog):
    caplog.set_level(logging.INFO)
    clock = FakeClock()

    def items():
        for i in range(3):
            clock.t += 20
            yield i

    assert list(track(items(), "study", every_s=30, clock=clock)) == [0, 1, 2]
    assert messages(caplog, "gan_interp.progress") == ["study: 2 40s elapsed", "study: done, 3 in 1m00s"]


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv(ENV_EVERY_S, "5")
    assert default_every_s() == 5.0 and Progress(1, "x").every_s == 5.0
    monkeypatch.setenv(ENV_EVERY_S, "soon")
    with pytest.raises(ConfigError, match="GAN_INTERP_PROGRESS_S='soon'"):
        default_every_s()
    monkeypatch.delenv(ENV_EVERY_S)
    assert default_every_s() == 30.0


def fake_trainer(epoch: int = 0) -> SimpleNamespace:
    metrics = {"train/d_loss_step": torch.tensor(1.2134), "train/g_loss_step": torch.tensor(0.8712)}
    return SimpleNamespace(
        current_epoch=epoch, max_epochs=4, num_training_batches=10, global_step=0, callback_metrics=metrics
    )


def test_progress_log_lines_when_stdout_is_not_a_terminal(caplog):
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    callback = ProgressLog(every_s=30, is_terminal=lambda: False, clock=clock)
    trainer, module = fake_trainer(), SimpleNamespace(g_steps=0)
    callback.on_train_start(trainer, module)
    for batch_idx in range(10):  # 10 s per batch: lines after batches 3, 6, 9 (30/60/90 s), then the epoch end
        clock.t += 10
        module.g_steps += 1
        callback.on_train_batch_end(trainer, module, None, None, batch_idx)
    callback.on_train_epoch_end(trainer, module)
    assert messages(caplog, "gan_interp.callbacks.progress") == [
        "train: epoch 1/4, batch 3/10, 3 g-steps, 30s elapsed, ETA 6m10s, d_loss 1.213, g_loss 0.871",
        "train: epoch 1/4, batch 6/10, 6 g-steps, 1m00s elapsed, ETA 5m40s, d_loss 1.213, g_loss 0.871",
        "train: epoch 1/4, batch 9/10, 9 g-steps, 1m30s elapsed, ETA 5m10s, d_loss 1.213, g_loss 0.871",
        "train: epoch 1/4, batch 10/10, 10 g-steps, 1m40s elapsed, ETA 5m00s, d_loss 1.213, g_loss 0.871",
    ]


def test_progress_log_on_a_terminal_keeps_only_epoch_end_lines_and_resume_eta(caplog):
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    callback = ProgressLog(every_s=30, is_terminal=lambda: True, clock=clock)
    trainer, module = fake_trainer(epoch=2), SimpleNamespace(g_steps=20)  # resumed at epoch 3 of 4
    callback.on_train_start(trainer, module)
    for batch_idx in range(10):
        clock.t += 10
        callback.on_train_batch_end(trainer, module, None, None, batch_idx)
    trainer.callback_metrics = {}
    callback.on_train_epoch_end(trainer, module)
    assert messages(caplog, "gan_interp.callbacks.progress") == [
        "train: epoch 3/4, batch 10/10, 20 g-steps, 1m40s elapsed, ETA 1m40s"
    ]


def progress_lines(caplog, label: str) -> list[str]:
    return [m for m in messages(caplog, "gan_interp.progress") if m.startswith(label)]


@pytest.fixture
def every_line(monkeypatch):
    """A progress line at every update (any time passed counts): long jobs made visible in a short test."""
    monkeypatch.setenv(ENV_EVERY_S, "1e-9")


def test_cache_decoding_emits_progress_lines(tmp_path, caplog, every_line):
    from PIL import Image

    from gan_interp.data.cache import build_cache
    from gan_interp.data.sources import FolderSource

    for i in range(4):
        Image.new("RGB", (12, 12), (60 * i, 20, 200)).save(tmp_path / f"img{i}.png")
    caplog.set_level(logging.INFO)
    build_cache(FolderSource(str(tmp_path), channels=3), tmp_path / "cache", 8, 3, "crop", workers=1)
    lines = progress_lines(caplog, "decode cache folder:")
    assert lines[0].startswith("decode cache folder: 1/4 images (25%)")
    assert lines[-1].startswith("decode cache folder: done, 4 images in ")


def test_mmd_permutations_emit_progress_lines(caplog, every_line):
    from gan_interp.metrics.mmd import mmd_test

    caplog.set_level(logging.INFO)
    g = torch.Generator().manual_seed(0)
    mmd_test(torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g), n_permutations=5, chunk=4)
    lines = progress_lines(caplog, "mmd kernel (5 permutations):")
    assert lines[0].startswith("mmd kernel (5 permutations): 1/6 blocks") and "done, 6 blocks" in lines[-1]


def test_study_collection_emits_progress_lines(tmp_path, caplog, every_line):
    from gan_interp.report.study import collecting

    caplog.set_level(logging.INFO)
    jobs = [tmp_path / f"{i}_job" for i in range(3)]
    assert list(collecting(jobs)) == jobs
    assert progress_lines(caplog, "collect jobs:")[-1].startswith("collect jobs: done, 3 jobs in ")
