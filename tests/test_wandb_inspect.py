"""A tiny real offline run, read back with the installed wandb's own reader (``wandb leet inspect --json``):
probe readings, metrics and losses as keys, the epoch axis on every row, captioned sample grids, tables -
and the CSV log the review page reads, written beside W&B by the default config."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import compose_config

from gan_interp.train import train
from gan_interp.wandb_inspect import LocalRun, find_runs, inspect_records, inspect_run, nest_dotted

TINY = ["data=fake", "model.ngf=8", "model.ndf=8", "model.latent_dim=8", "trainer.max_epochs=2"]
PROBES = [
    "probes=default",
    "probes.probes.actmax.steps=2",
    "probes.probes.directions.n_samples=16",
    "probes.probes.saliency.nt_samples=2",
    "probes.probes.traversals.dims=2",
]
METRICS = ["metrics=default", "metrics.n=24", "metrics.metrics.c2st.epochs=1", "metrics.metrics.mmd.n_permutations=20"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Path, LocalRun]:
    """(run dir, offline W&B run dir, what wandb's reader found in it) of a 2-epoch DCGAN run, default loggers."""
    cfg = compose_config(tmp_path_factory.mktemp("wandb_run"), [*TINY, *PROBES, *METRICS])
    assert list(cfg.logger) == ["wandb", "csv"]
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    (offline,) = find_runs(run_dir / "wandb")
    return run_dir, offline, inspect_run(offline)


def test_the_reader_is_wandbs_own_record_inspector(tiny_run) -> None:
    _, offline, _ = tiny_run
    records = list(inspect_records(offline))
    kinds = {r["type"] for r in records}
    assert {"run", "config", "history", "summary", "metric", "files", "exit"} <= kinds
    assert records[0]["header"]["version_info"]["producer"].startswith("0.")  # written by wandb-core
    with pytest.raises(FileNotFoundError, match="no run-"):
        list(inspect_records(offline.parent))


def test_keys_axes_and_summaries(tiny_run) -> None:
    _, _, run = tiny_run
    assert run.name == "dcgan-fake-s0" and run.job_type == "train" and run.exit_code == 0
    for row in run.history:  # every row carries the epoch axis and the generator-step count
        assert isinstance(row.get("epoch"), int) and isinstance(row.get("g_steps"), int), sorted(row)
    probe_rows = [r for r in run.history if "probes/time_s" in r]
    assert [r["epoch"] for r in probe_rows] == [0, 1]  # one row per probe run, at its epoch
    for key in (
        "probes/filters/mean_neutral_share",
        "probes/directions/sefa/effect_ratio_vs_random",
        "probes/activations/layers/G_8px/mean",
        "probes/traversals/freeze_diversity/none",
        "probes/neighbours/pixel/gen_over_val",
    ):
        assert all(isinstance(r.get(key), float) for r in probe_rows), key
    (metric_row,) = [r for r in run.history if "metrics/mmd2" in r]  # metrics=default: once, at the end
    assert metric_row["epoch"] == 1 and 0 <= metric_row["metrics/c2st_accuracy"] <= 1
    assert len(run.series("train/d_loss_epoch")) == len(run.series("train/g_loss_epoch")) == 2
    assert run.series("val/critic_gap") and not run.series("val/d_real")  # val: raw critic scores, own names
    for prefix in ("samples/*", "probes/*", "metrics/*", "val/*"):
        assert run.metrics[prefix]["step_metric"] == "epoch", prefix
    assert run.metrics["metrics/mmd2"]["summary"] == ["last", "min"]
    assert set(run.summary["metrics/mmd2"]) == {"last", "min"}
    assert run.config["model"]["name"] == "dcgan"


def test_media_and_tables(tiny_run) -> None:
    _, offline, run = tiny_run
    grids = run.series("samples/fixed_z")
    assert [g["_type"] for g in grids] == ["image-file"] * 2
    assert [g["caption"] for g in grids] == [
        f"epoch {e}: 64 samples of the fixed latents 0..63 (the same every epoch), 8 per row" for e in (0, 1)
    ]
    assert all((offline / "files" / g["path"]).is_file() for g in grids)
    assert all(p in run.files for p in (g["path"] for g in grids))
    probe_img = run.series("probes/saliency/real")
    assert len(probe_img) == 2 and probe_img[0]["caption"].startswith("epoch 0: ")
    tables = run.series("probes/actmax/reached")
    assert [t["_type"] for t in tables] == ["table-file"] * 2
    blob = json.loads((offline / "files" / tables[-1]["path"]).read_text())
    assert blob["columns"] == ["channel", "parametrisation", "start", "reached"] and len(blob["data"]) >= 1


def test_the_csv_log_runs_beside_wandb(tiny_run) -> None:
    run_dir, _, _ = tiny_run
    with (run_dir / "csv" / "metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    header = set(rows[0])
    assert {"epoch", "step", "g_steps", "train/d_loss_epoch", "val/critic_gap", "metrics/mmd2"} <= header
    assert "probes/filters/mean_neutral_share" in header
    assert sorted({r["epoch"] for r in rows if r["train/d_loss_epoch"]}) == ["0", "1"]


def test_nest_dotted_rebuilds_media_values() -> None:
    flat = {
        "epoch": 0,
        "a/img._type": "image-file",
        "a/img.caption": "x",
        "b": "NaN",
        "c": "-Infinity",
        "d": 2,
        "d.e": 1,  # under a name that holds a plain value: the dotted key is kept as it is
    }
    out = nest_dotted(flat)
    assert out["a/img"] == {"_type": "image-file", "caption": "x"} and out["epoch"] == 0
    assert out["b"] != out["b"] and out["c"] == float("-inf")  # NaN and -inf: floats again
    assert out["d"] == 2 and out["d.e"] == 1
