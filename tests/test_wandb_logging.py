"""W&B rows on one epoch axis, probe readings as scalars named by stage - read back from real offline runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from gan_interp.logging_utils import LogRow, finish_wandb, make_wandb_logger
from gan_interp.models import DCGAN
from gan_interp.probes.readings import probe_readings
from gan_interp.probes.stages import StageNames, layer_stages, stage_names
from gan_interp.train import train
from gan_interp.wandb_inspect import find_runs, inspect_run

CHEAP_PROBES = [
    "probes=default",
    "probes.probes.actmax.steps=2",
    "probes.probes.directions.n_samples=16",
    "probes.probes.saliency.nt_samples=2",
    "probes.probes.traversals.dims=2",
    "probes.probes.members.n_medoid=4",
]
ARCHS = {
    "dcgan": ["model.ngf=8", "model.ndf=8", "model.latent_dim=8"],
    "stylegan_lite": [
        "model=stylegan_lite",
        "model.latent_dim=16",
        "model.w_dim=16",
        "model.channel_base=256",
        "model.channel_max=16",
    ],
    "kgan": ["model=kgan", "model.ngf=8", "model.ndf=8", "model.latent_dim=8"],
}
# readings every architecture has, under the same names (layers by stage: G_8px, D_8px, ...)
SHARED_READINGS = [
    "probes/time_s",
    "probes/saliency/real/center_mass_share",
    "probes/saliency/fake/critic_scores/mean",
    "probes/activations/layers/G_4px/mean",
    "probes/activations/layers/G_8px/frac_positive",
    "probes/activations/layers/G_32px/std",
    "probes/activations/layers/D_16px/mean",
    "probes/activations/layers/D_8px/mean",
    "probes/activations/similar_inputs/G_16px/cka_similar",
    "probes/activations/cka_layers/G/matrix/mean",
    "probes/traversals/freeze_diversity/none",
    "probes/traversals/z_dim_change/0",
    "probes/directions/sefa/effect_ratio_vs_random",
    "probes/directions/ganspace/effect/mean",
    "probes/actmax/pixel/reached/mean",
    "probes/filters/mean_neutral_share",
    "probes/neighbours/pixel/gen_over_val",
    "probes/neighbours/pixel/mean_nn_distance",
]


def test_stage_names_by_output_size_last_layer_of_a_size_plain():
    dcgan_g = {"block0": (1, 32, 4, 4), "block1": (1, 16, 8, 8), "to_image": (1, 3, 16, 16)}
    assert stage_names("G", dcgan_g) == {"block0": "G_4px", "block1": "G_8px", "to_image": "G_16px"}
    style_g = {"b4_conv1": (1, 8, 4, 4), "b8_conv0": (1, 8, 8, 8), "b8_conv1": (1, 8, 8, 8), "b16_a": (1, 8, 16, 16)}
    assert stage_names("G", style_g) == {
        "b4_conv1": "G_4px",
        "b8_conv0": "G_8px_0",  # earlier layers of a size: indexed in forward order
        "b8_conv1": "G_8px",  # the last one of a size (the block's output) gets the plain name
        "b16_a": "G_16px",
    }
    assert stage_names("D", {"a": (1, 4, 8, 8), "b": (1, 4, 8, 4), "c": (1, 1)}) == {
        "a": "D_8px",
        "b": "D_8x4px",
        "c": "D_flat",
    }


def test_layer_stages_of_a_model_change_no_state():
    model = DCGAN(latent_dim=8, ngf=8, ndf=8, resolution=32).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    expected = torch.manual_seed(5) and torch.rand(3)
    torch.manual_seed(5)
    stages = layer_stages(model)
    assert torch.equal(torch.rand(3), expected)  # the global RNG is untouched
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert stages.by_side == {
        "G": {"block0": "G_4px", "block1": "G_8px", "block2": "G_16px", "to_image": "G_32px"},
        "D": {"block0": "D_16px", "block1": "D_8px", "block2": "D_4px"},
    }
    assert stages.name("G", "block1") == "G_8px" and stages.name("D", "m1.x") == "D_m1_x"  # unknown: module name


def test_probe_readings_flatten_mean_lists_skip_bookkeeping_and_name_layers_by_stage():
    stages = StageNames({"G": {"block1": "G_8px"}, "D": {"block1": "D_8px"}})
    summary = {
        "n": 8,  # bookkeeping
        "alphas": [-1.0, 1.0],  # bookkeeping
        "space": "z",  # not a number
        "absolute": True,  # not a reading
        "missing": None,  # NaN stored as null
        "layers": {"G": {"block1": {"mean": 0.5, "channels": 16}}, "D": {"block1": {"std": 2.0}}},
        "cka_vs_previous_epoch": {"epoch": 0, "G/block1": 0.9},
        "sefa": {"effect": [1.0, 2.0, 3.0], "effect_ratio_vs_random": 1.5, "empty": []},
        "matrix": [[1.0, 0.0], [0.0, 1.0]],
        "concept_ratio": {"title band": 2.0},
        "time_s": 0.25,
    }
    assert probe_readings("unit", summary, stages) == {
        "probes/unit/layers/G_8px/mean": 0.5,
        "probes/unit/layers/D_8px/std": 2.0,
        "probes/unit/cka_vs_previous_epoch/G_8px": 0.9,
        "probes/unit/sefa/effect/mean": 2.0,
        "probes/unit/sefa/effect_ratio_vs_random": 1.5,
        "probes/unit/matrix/mean": 0.5,
        "probes/unit/concept_ratio/title_band": 2.0,  # W&B-safe key segment
        "probes/unit/time_s": 0.25,
    }


def test_log_row_is_one_wandb_row_at_its_epoch_and_csv_gets_the_axes(tmp_path):
    wandb_logger = make_wandb_logger(str(tmp_path), name="unit-rows")
    csv_logger = CSVLogger(str(tmp_path), name="csv", version="")
    for epoch in (1, 0):  # logged out of order: the epoch axis still places them
        row = LogRow(epoch, g_steps=10 * epoch, step=100 + epoch)
        row.scalars({"probes/unit/value": float(epoch)})
        row.image("probes/unit/grid", torch.rand(3, 8, 8), caption="rows = a, columns = b")
        row.table("probes/unit/table", ["a", "b"], [[1, 2.0]])
        row.log([wandb_logger, csv_logger])
    csv_logger.save()
    finish_wandb()
    run = inspect_run(find_runs(tmp_path / "wandb")[0])
    rows = [r for r in run.history if "probes/unit/value" in r]
    assert len(rows) == 2  # scalars, image and table of one row in one log call
    assert [(r["epoch"], r["g_steps"]) for r in rows] == [(1, 10), (0, 0)]
    assert all("probes/unit/grid" in r and "probes/unit/table" in r for r in rows)
    assert [r["probes/unit/grid"]["caption"] for r in rows] == [
        "epoch 1: rows = a, columns = b",
        "epoch 0: rows = a, columns = b",
    ]
    assert all("trainer/global_step" not in r for r in rows)  # optimizer steps are no axis here
    assert run.metrics["probes/*"]["step_metric"] == "epoch" and run.metrics["train/*"]["step_metric"]
    assert "*" not in run.metrics  # W&B matches overlapping globs in no fixed order: none overlap
    assert run.metrics["metrics/fid"]["summary"] == ["last", "min"]
    header = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "g_steps", "step", "probes/unit/value"} <= set(header)


def _train_tiny(make_cfg, arch: str, epochs: int) -> tuple[object, Path]:
    cfg = make_cfg(["data=fake", *ARCHS[arch], f"trainer.max_epochs={epochs}", "logger=wandb", *CHEAP_PROBES])
    train(cfg)
    out = Path(cfg.paths.output_dir)
    return inspect_run(find_runs(out / "wandb")[0]), out


@pytest.mark.parametrize("arch", list(ARCHS))
def test_probe_readings_share_names_across_architectures(make_cfg, arch):
    run, _ = _train_tiny(make_cfg, arch, 1)
    [probe_row] = [r for r in run.history if "probes/time_s" in r]  # one row per probe run
    missing = [k for k in SHARED_READINGS if not isinstance(probe_row.get(k), float)]
    assert not missing, missing
    assert probe_row["epoch"] == 0 and probe_row["g_steps"] >= 1
    assert isinstance(probe_row["probes/activations/G_8px_channels"], dict)  # images keyed by stage too
    assert ("probes/members/medoid_distances/mean" in probe_row) == (arch == "kgan")
    assert not [k for k in probe_row if k.startswith("probes/") and any(m in k for m in ("block", "b8_", "conv"))]
    for r in run.history:  # every row carries the axes; samples, probes, metrics, k-GAN images by epoch
        assert "epoch" in r and "g_steps" in r, sorted(r)
    images = [(k, v) for r in run.history for k, v in r.items() if isinstance(v, dict) and "caption" in v]
    assert images and all(v["caption"].startswith("epoch 0: ") for _, v in images)
    if arch == "kgan":
        assert {"kgan/samples/m0", "kgan/cell_medoids"} <= {k for k, _ in images}
    for prefix in ("samples/*", "probes/*", "metrics/*", "kgan/*"):
        assert run.metrics[prefix]["step_metric"] == "epoch"


def _artifact_records(offline_run: Path) -> list[dict]:
    """The ``artifact`` records of an offline run, as wandb's own reader prints them (``wandb leet inspect --json``)."""
    import json
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(offline_run)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [r["artifact"] for r in records if r.get("type") == "artifact"]


def test_offline_run_stages_checkpoint_and_tables_inside_the_run_dir_and_nothing_in_home(
    make_cfg, tmp_path, monkeypatch
):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    cfg = make_cfg(
        ["data=fake", *ARCHS["dcgan"], "trainer.max_epochs=1", "logger=wandb", "probes=activations", "metrics=none"]
    )
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    offline = find_runs(run_dir / "wandb")[0]
    artifacts = _artifact_records(offline)
    model = [a for a in artifacts if a["type"] == "model"]
    assert [a["name"] for a in model] == [f"model-{offline.name.rsplit('-', 1)[1]}"]  # the final checkpoint, once
    assert set(model[0]["aliases"]) == {"latest", "last"}
    assert model[0]["metadata"] and "last.ckpt" in model[0]["metadata"]
    assert {a["type"] for a in artifacts} == {"model", "run_table"}  # the probe tables' artifacts
    staged = [Path(c["local_path"]) for a in artifacts for c in a["manifest"]["contents"]]
    assert staged and all(p.is_file() and p.is_relative_to(run_dir / "wandb") for p in staged), staged
    assert list(home.rglob("*")) == []  # nothing of W&B's lands in the user's home
    logged = inspect_run(offline)
    assert (offline / "files" / "output.log").is_file()  # console captured
    resolved = set(json.loads((run_dir / "config_resolved.json").read_text()))
    assert set(logged.config) - {"_wandb"} == resolved  # the config once: no model hparams at the top level
    assert "latent_dim" not in logged.config and logged.config["model"]["latent_dim"] == 8


def test_log_model_all_logs_every_checkpoint_file_aliased_by_its_name(make_cfg):
    from gan_interp.probe_wandb import logged_alias

    every_epoch = "callbacks.model_checkpoint.every_n_epochs=1"
    overrides = ["trainer.max_epochs=2", "logger=wandb", "logger.wandb.log_model=all", every_epoch]
    cfg = make_cfg(["data=fake", *ARCHS["dcgan"], *overrides, "probes=none", "metrics=none"])
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    models = [a for a in _artifact_records(find_runs(run_dir / "wandb")[0]) if a["type"] == "model"]
    assert [sorted(a["aliases"]) for a in models] == [["epoch_000", "latest"], ["epoch_001", "latest"]]
    last = run_dir / "checkpoints" / "last.ckpt"  # a link to epoch_001.ckpt: the version aliased epoch_001
    assert logged_alias(last, run_dir, "all") == "epoch_001" and logged_alias(last, run_dir, False) is None
