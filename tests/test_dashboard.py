"""The W&B workspace built as code from a real tiny offline sweep: every panel reads a key the runs logged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gan_interp.dashboard import build_workspace, group_runs, main, panel_keys, workspace_spec
from gan_interp.wandb_inspect import find_runs, inspect_run
from gan_interp.wandb_tables import log_study_tables

SWEEP = [
    "-m",
    "data=fake",
    "model.ngf=8",
    "model.ndf=8",
    "model.latent_dim=8",
    "trainer.max_epochs=1",
    "~callbacks.rich_progress_bar",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "logger=wandb",
    "probes=filters",
    "metrics=none",
    "threads=1",
    "model.lr=0.0002,0.0001",  # 2 jobs
]
RESULTS_MD = "Final metrics:\n\n| model | FID |\n|---|---|\n| dcgan | 1.5 ± 0.1 |\n"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, str]:
    """A 2-job offline sweep (+ a study run with its tables in the sweep's group); (sweep dir, group)."""
    tmp = tmp_path_factory.mktemp("dashboard")
    sweep_dir = tmp / "sweep"
    env = {**os.environ, "WANDB_MODE": "offline", "GAN_INTERP_CACHE": str(tmp / "cache")}
    cmd = [sys.executable, "-m", "gan_interp.train", *SWEEP, f"hydra.sweep.dir={sweep_dir}"]
    proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (tmp / "results.md").write_text(RESULTS_MD)
    assert log_study_tables(sweep_dir, tmp / "results.md", "unit") is not None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime((sweep_dir / "multirun.yaml").stat().st_mtime))
    return sweep_dir, f"model.lr:0.0002,0.0001-{stamp}"


def test_every_panel_reads_a_key_the_sweeps_runs_logged(sweep):
    sweep_dir, group = sweep
    runs = group_runs(sweep_dir, group)
    assert sorted((r.job_type, r.name) for r in runs) == [
        ("study", "unit-tables"),
        ("train", "dcgan-fake-s0 model.lr=0.0001"),  # the swept override the name did not show
        ("train", "dcgan-fake-s0 model.lr=0.0002"),
    ]
    spec = workspace_spec(build_workspace("me", "gan-interp", group, runs))
    keys = panel_keys(spec)
    logged = {k for r in runs for k in (*r.history_keys, *r.summary)}
    assert keys and not set(keys) - logged, sorted(set(keys) - logged)
    assert {"samples/fixed_z", "epoch", "train/d_loss_epoch", "study/final_metrics"} <= set(keys)
    assert "probes/filters/mean_neutral_share" in keys
    sections = [s["name"] for s in spec["spec"]["section"]["panelBankConfig"]["sections"]]
    assert sections[:2] == ["Samples by epoch", "Metric curves"]
    assert {"Probe readings across runs", "Probe readings: filters", "Study tables"} <= set(sections)
    [runset] = spec["spec"]["section"]["runSets"]
    assert runset["filters"]["filters"] == [  # the runs of the group, and no others
        {"key": {"section": "run", "name": "group"}, "op": "=", "value": group, "disabled": False}
    ]


def test_cli_offline_writes_the_spec_and_says_in_one_line_that_pushing_needs_network(sweep, tmp_path, capsys):
    sweep_dir, group = sweep
    out = tmp_path / "spec.json"
    code = main(
        ["--entity", "me", "--project", "gan-interp", "--group", group, "--runs", str(sweep_dir), "--out", str(out)]
    )
    printed = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and printed == [
        f"wrote the workspace spec of 3 runs to {out}; pushing it to W&B needs network and a login"
    ]
    spec = json.loads(out.read_text())
    assert spec["entity"] == "me" and spec["project"] == "gan-interp" and panel_keys(spec)
    with pytest.raises(SystemExit) as stop:
        main(["--entity", "me", "--project", "p", "--group", "nope", "--runs", str(sweep_dir)])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: --group 'nope': no run under ")


def test_local_runs_are_read_with_wandbs_own_reader(sweep):
    sweep_dir, _ = sweep
    folders = find_runs(sweep_dir)
    assert len(folders) == 3 and all(p.parent.name == "wandb" for p in folders)
    run = inspect_run(folders[0])
    assert run.exit_code == 0 and run.run_id and run.tags
